//! `manifest.json`: what a run was made from and what each stage produced.

use crate::summary::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("failed to read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid manifest (delete it to start the run afresh)")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "`{path}` was written for version {found} of the run directory contract; this strata writes version {}: rerun the pipeline",
        crate::SCHEMA_VERSION
    )]
    Version { path: PathBuf, found: u64 },
    #[error("failed to serialise the manifest for `{path}`")]
    Serialize {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One input file of the corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What every stage's record holds, whatever the stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageRun {
    /// Hash of everything the stage's output depends on; equal fingerprints allow a skip.
    pub fingerprint: String,
    pub seconds: f64,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Output file (run-relative) -> sha256 of its content.
    pub outputs: BTreeMap<String, String>,
}

/// What one stage did: the common record with the stage's own summary beside it (one JSON
/// object in the file: `stages.select.budget_tokens` next to `stages.select.seconds`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageRecord<S> {
    #[serde(flatten)]
    pub run: StageRun,
    #[serde(flatten)]
    pub summary: S,
}

/// The record of each stage that has run, under its name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stages {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<StageRecord<ChunkSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<StageRecord<EmbedSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<StageRecord<FitSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<StageRecord<KeywordsSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxonomy: Option<StageRecord<TaxonomySummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtrees: Option<StageRecord<SubtreesSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<StageRecord<SelectSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit: Option<StageRecord<EmitSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<StageRecord<IndexSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<StageRecord<CostSummary>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<StageRecord<ReportSummary>>,
}

impl Stages {
    /// The common record of `stage`, if it has run.
    pub fn run(&self, stage: StageName) -> Option<&StageRun> {
        match stage {
            StageName::Chunk => self.chunk.as_ref().map(|r| &r.run),
            StageName::Embed => self.embed.as_ref().map(|r| &r.run),
            StageName::Fit => self.fit.as_ref().map(|r| &r.run),
            StageName::Keywords => self.keywords.as_ref().map(|r| &r.run),
            StageName::Taxonomy => self.taxonomy.as_ref().map(|r| &r.run),
            StageName::Subtrees => self.subtrees.as_ref().map(|r| &r.run),
            StageName::Select => self.select.as_ref().map(|r| &r.run),
            StageName::Emit => self.emit.as_ref().map(|r| &r.run),
            StageName::Index => self.index.as_ref().map(|r| &r.run),
            StageName::Cost => self.cost.as_ref().map(|r| &r.run),
            StageName::Report => self.report.as_ref().map(|r| &r.run),
        }
    }

    /// The summary of `stage`, if it has run.
    pub fn summary(&self, stage: StageName) -> Option<StageSummary> {
        match stage {
            StageName::Chunk => self.chunk.as_ref().map(|r| StageSummary::Chunk(r.summary.clone())),
            StageName::Embed => self.embed.as_ref().map(|r| StageSummary::Embed(r.summary.clone())),
            StageName::Fit => self.fit.as_ref().map(|r| StageSummary::Fit(r.summary.clone())),
            StageName::Keywords => self.keywords.as_ref().map(|r| StageSummary::Keywords(r.summary.clone())),
            StageName::Taxonomy => self.taxonomy.as_ref().map(|r| StageSummary::Taxonomy(r.summary.clone())),
            StageName::Subtrees => self.subtrees.as_ref().map(|r| StageSummary::Subtrees(r.summary.clone())),
            StageName::Select => self.select.as_ref().map(|r| StageSummary::Select(r.summary.clone())),
            StageName::Emit => self.emit.as_ref().map(|r| StageSummary::Emit(r.summary.clone())),
            StageName::Index => self.index.as_ref().map(|r| StageSummary::Index(r.summary.clone())),
            StageName::Cost => self.cost.as_ref().map(|r| StageSummary::Cost(r.summary.clone())),
            StageName::Report => self.report.as_ref().map(|r| StageSummary::Report(r.summary.clone())),
        }
    }

    /// Records a stage's run under the stage its summary belongs to.
    pub fn insert(&mut self, run: StageRun, summary: StageSummary) {
        match summary {
            StageSummary::Chunk(summary) => self.chunk = Some(StageRecord { run, summary }),
            StageSummary::Embed(summary) => self.embed = Some(StageRecord { run, summary }),
            StageSummary::Fit(summary) => self.fit = Some(StageRecord { run, summary }),
            StageSummary::Keywords(summary) => self.keywords = Some(StageRecord { run, summary }),
            StageSummary::Taxonomy(summary) => self.taxonomy = Some(StageRecord { run, summary }),
            StageSummary::Subtrees(summary) => self.subtrees = Some(StageRecord { run, summary }),
            StageSummary::Select(summary) => self.select = Some(StageRecord { run, summary }),
            StageSummary::Emit(summary) => self.emit = Some(StageRecord { run, summary }),
            StageSummary::Index(summary) => self.index = Some(StageRecord { run, summary }),
            StageSummary::Cost(summary) => self.cost = Some(StageRecord { run, summary }),
            StageSummary::Report(summary) => self.report = Some(StageRecord { run, summary }),
        }
    }

    /// The stages that have run, in pipeline order.
    pub fn iter(&self) -> impl Iterator<Item = (StageName, &StageRun)> {
        StageName::ALL.into_iter().filter_map(|name| self.run(name).map(|r| (name, r)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub tool_version: String,
    /// The resolved configuration (recipe, flags and defaults merged).
    pub config: Value,
    pub inputs: Vec<InputFile>,
    /// Files of the corpus that were skipped, with the reason (e.g. not text).
    #[serde(default)]
    pub skipped: Vec<Value>,
    #[serde(default)]
    pub stages: Stages,
}

impl Manifest {
    pub fn new(config: Value) -> Self {
        Self {
            schema_version: crate::SCHEMA_VERSION,
            tool_version: crate::TOOL_VERSION.to_string(),
            config,
            inputs: Vec::new(),
            skipped: Vec::new(),
            stages: Stages::default(),
        }
    }

    /// Loads a manifest if one exists.
    pub fn load(path: &Path) -> Result<Option<Self>, ManifestError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let parse = |source| ManifestError::Parse { path: path.to_path_buf(), source };
                let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(parse)?;
                match value.get("schema_version").and_then(|v| v.as_u64()) {
                    Some(found) if found != crate::SCHEMA_VERSION as u64 => Err(ManifestError::Version { path: path.to_path_buf(), found }),
                    _ => serde_json::from_value(value).map(Some).map_err(parse),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ManifestError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// Writes the manifest atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), ManifestError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| ManifestError::Serialize { path: path.to_path_buf(), source })?;
        text.push('\n');
        crate::stage::write_atomically(path, text.as_bytes()).map_err(|source| ManifestError::Write { path: path.to_path_buf(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_sit_flat_beside_the_common_record_and_read_back_typed() {
        let mut m = Manifest::new(serde_json::json!({"domain": "d"}));
        let run = StageRun { fingerprint: "f".into(), seconds: 1.5, rows_in: 10, rows_out: 4, outputs: BTreeMap::new() };
        let select = SelectSummary { budget_tokens: 300, corpus_tokens: 1000, selected_tokens: 290, ..Default::default() };
        m.stages.insert(run.clone(), StageSummary::Select(select.clone()));
        let json = serde_json::to_value(&m).expect("json");
        assert_eq!(json["stages"]["select"]["budget_tokens"], 300);
        assert_eq!(json["stages"]["select"]["rows_out"], 4);
        assert!(json["stages"].get("chunk").is_none(), "stages that did not run are absent");
        let back: Manifest = serde_json::from_value(json).expect("parse");
        assert_eq!(back.stages.select, Some(StageRecord { run, summary: select }));
        assert_eq!(back.stages.iter().map(|(n, _)| n).collect::<Vec<_>>(), vec![StageName::Select]);
    }

    #[test]
    fn a_record_missing_a_figure_is_an_error_not_a_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manifest.json");
        let text = r#"{"schema_version": 2, "tool_version": "0", "config": null, "inputs": [],
            "stages": {"select": {"fingerprint": "f", "seconds": 1, "rows_in": 1, "rows_out": 1, "outputs": {}}}}"#;
        std::fs::write(&path, text).expect("write");
        let err = Manifest::load(&path).expect_err("no budget_tokens");
        assert!(matches!(err, ManifestError::Parse { .. }) && err.to_string().contains("manifest.json"), "{err}");
    }

    #[test]
    fn a_manifest_of_another_contract_version_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, r#"{"schema_version": 1, "stages": {}}"#).expect("write");
        let err = Manifest::load(&path).expect_err("version 1");
        assert!(matches!(err, ManifestError::Version { found: 1, .. }) && err.to_string().contains("version 1"), "{err}");
    }
}
