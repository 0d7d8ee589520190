//! strata-cost: the cost ledger (`cost.json`), comparing knowledge-injection routes on this corpus.
//!
//! It owns the assumptions ([`CostConfig`] with its model and GPU presets), the formulas
//! ([`compute`], documented in `FORMULAS.md`), the terminal table ([`render_table`]) and the
//! `cost` stage ([`CostStage`]), which measures the corpus figures from the run directory.
//! It does not own the ledger's types (those are `strata_core::ledger`, shared with the
//! report), it does not train or serve anything, and it does not draw the ledger.

mod compute;
mod config;
pub mod presets;
mod table;

pub use compute::{compute, literature};
pub use config::CostConfig;
pub use table::render_table;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use strata_core::ledger::CorpusFigures;
use strata_core::ledger::LlmUsage;
use strata_core::manifest::Manifest;
use strata_core::rundir::{CHUNKS, COST, INDEX_DIR, MANIFEST, SCPT, SSFT, SSFT_QA, TAXONOMY};
use strata_core::summary::CostSummary;
use strata_core::{RunDir, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("unknown model preset `{name}`; valid presets: {valid}")]
    UnknownModel { name: String, valid: String },
    #[error("unknown GPU preset `{name}`; valid presets: {valid}")]
    UnknownGpu { name: String, valid: String },
    #[error("invalid cost setting `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("`{path}` has no record of the {stage} stage; run it first")]
    MissingStage { path: PathBuf, stage: StageName },
    #[error("failed to read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The `cost` stage: measures the corpus figures and writes `cost.json`.
pub struct CostStage {
    pub config: CostConfig,
    /// Whether the run writes `ssft_qa` (its size is part of the SSFT figures).
    pub ssft_qa: bool,
    /// The recipe's LLM model, when it has one: the ledger counts its requests and tokens.
    pub llm_model: Option<String>,
}

impl Stage for CostStage {
    fn name(&self) -> StageName {
        StageName::Cost
    }

    fn reads(&self) -> Vec<&'static str> {
        let mut reads = vec![CHUNKS, SCPT, SSFT, INDEX_DIR];
        if self.ssft_qa {
            reads.push(SSFT_QA);
        }
        if self.llm_model.is_some() {
            // The titles' figures come with the taxonomy.
            reads.push(TAXONOMY);
        }
        reads
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![COST]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(match &self.llm_model {
            Some(model) => json!({ "config": self.config, "llm_model": model }),
            None => json!({ "config": self.config }),
        })
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let figures = measure(ctx.run, ctx.manifest)?;
        let n_chunks = figures.n_chunks;
        let mut ledger = compute(&self.config, figures)?;
        ledger.llm = self.llm_model.as_ref().map(|model| llm_usage(model, ctx.manifest));
        let path = ctx.output(COST).map_err(|source| CostError::Write { path: ctx.run.path(COST), source })?;
        let mut text = serde_json::to_string_pretty(&ledger)
            .map_err(|e| CostError::Write { path: ctx.run.path(COST), source: std::io::Error::other(e) })?;
        text.push('\n');
        std::fs::write(&path, text).map_err(|source| CostError::Write { path: ctx.run.path(COST), source })?;

        let c = &ledger.corpus;
        let summary = CostSummary {
            corpus_tokens: c.corpus_tokens,
            subset_tokens: c.subset_tokens,
            ssft_tokens: c.ssft_tokens,
            index_bytes: c.index_bytes,
        };
        Ok(StageStats { rows_in: n_chunks, rows_out: ledger.rows.len() as u64, summary: StageSummary::Cost(summary) })
    }
}

/// Measures the corpus figures of a run: the corpus totals as the chunk stage recorded them,
/// the training sets' sizes as the emit stage recorded them, the index stage's seconds, and
/// the size of `index/` on disk.
pub fn measure(run: &RunDir, manifest: &Manifest) -> Result<CorpusFigures, CostError> {
    let missing = |stage: StageName| CostError::MissingStage { path: run.path(MANIFEST), stage };
    let chunk = manifest.stages.chunk.as_ref().ok_or(missing(StageName::Chunk))?;
    let emit = manifest.stages.emit.as_ref().ok_or(missing(StageName::Emit))?;
    let index_run = manifest.stages.index.as_ref().ok_or(missing(StageName::Index))?;
    let index = run.path(INDEX_DIR);
    let index_bytes = folder_bytes(&index).map_err(|e| CostError::Read { path: index.clone(), source: e.into() })?;
    let (corpus_tokens, n_chunks) = (chunk.summary.corpus_tokens, chunk.run.rows_out);
    Ok(CorpusFigures {
        corpus_tokens,
        subset_tokens: emit.summary.scpt_tokens,
        subset_samples: emit.summary.scpt_samples,
        // StructTuning's SSFT: the structure samples and the question answering.
        ssft_tokens: emit.summary.ssft_tokens + emit.summary.ssft_qa_tokens,
        ssft_samples: emit.summary.ssft_samples + emit.summary.ssft_qa_samples,
        mean_chunk_tokens: if n_chunks == 0 { 0.0 } else { corpus_tokens as f64 / n_chunks as f64 },
        n_chunks,
        index_bytes,
        index_build_seconds: index_run.run.seconds,
    })
}

/// The LLM's requests and tokens as the taxonomy and emit stages recorded them.
fn llm_usage(model: &str, manifest: &Manifest) -> LlmUsage {
    let titles = manifest.stages.taxonomy.as_ref().and_then(|t| t.summary.llm_titles.clone());
    let qa = manifest.stages.emit.as_ref().and_then(|e| e.summary.llm_qa.clone());
    let qa_passages = qa.as_ref().map_or(0, |q| q.requests);
    let per_1k = |tokens: u64| if qa_passages == 0 { 0.0 } else { (tokens as f64 * 1000.0 / qa_passages as f64).round() };
    LlmUsage {
        model: model.to_string(),
        qa_prompt_tokens_per_1k_passages: per_1k(qa.as_ref().map_or(0, |q| q.prompt_tokens)),
        qa_completion_tokens_per_1k_passages: per_1k(qa.as_ref().map_or(0, |q| q.completion_tokens)),
        titles,
        qa,
        qa_passages,
    }
}

/// Bytes of every file under `path` (or of `path` itself when it is a file).
fn folder_bytes(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        total += folder_bytes(&entry?.path())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::ledger::Ledger;
    use strata_core::manifest::StageRun;
    use strata_core::stage::{run_stage, Outcome};
    use strata_core::summary::{ChunkSummary, EmitSummary};
    use strata_core::NoProgress;

    /// A run directory with an index folder and a manifest whose chunk, emit and index
    /// stages have run: 2 chunks of 400 tokens, 2 SCPT samples of 200, 1 SSFT sample of 70.
    fn fixture_run(dir: &Path) -> (RunDir, Manifest) {
        let run = RunDir::new(dir);
        std::fs::create_dir_all(run.path(INDEX_DIR)).expect("index dir");
        std::fs::write(run.path(INDEX_DIR).join("seg"), [0u8; 1000]).expect("index file");
        for rel in [CHUNKS, SCPT, SSFT] {
            std::fs::create_dir_all(run.path(rel).parent().expect("parent")).expect("dir");
            std::fs::write(run.path(rel), rel).expect("input");
        }
        let mut manifest = Manifest::new(json!({}));
        let ran = |rows_out, seconds| StageRun { rows_out, seconds, ..Default::default() };
        let chunk = ChunkSummary { corpus_tokens: 400, ..Default::default() };
        manifest.stages.insert(ran(2, 1.0), StageSummary::Chunk(chunk));
        let emit = EmitSummary { scpt_samples: 2, scpt_tokens: 200, ssft_samples: 1, ssft_tokens: 70, ..Default::default() };
        manifest.stages.insert(ran(3, 1.0), StageSummary::Emit(emit));
        manifest.stages.insert(ran(2, 2.5), StageSummary::Index(Default::default()));
        manifest.save(&run.path(MANIFEST)).expect("manifest");
        (run, manifest)
    }

    #[test]
    fn measure_reads_the_recorded_totals_and_the_index_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (run, manifest) = fixture_run(dir.path());
        let f = measure(&run, &manifest).expect("figures");
        assert_eq!((f.corpus_tokens, f.n_chunks, f.mean_chunk_tokens), (400, 2, 200.0));
        assert_eq!((f.subset_tokens, f.subset_samples), (200, 2));
        assert_eq!((f.ssft_tokens, f.ssft_samples), (70, 1));
        assert_eq!(f.index_bytes, 1000);
        assert_eq!(f.index_build_seconds, 2.5);
    }

    #[test]
    fn stage_writes_cost_json_with_the_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (run, mut manifest) = fixture_run(dir.path());
        let stage = CostStage { config: CostConfig::default(), ssft_qa: false, llm_model: None };
        let outcome = run_stage(&run, &mut manifest, &stage, &NoProgress, false).expect("stage runs");
        assert_eq!(outcome, Outcome::Ran);
        let text = std::fs::read_to_string(run.path(COST)).expect("cost.json");
        let ledger: Ledger = serde_json::from_str(&text).expect("parses");
        assert_eq!(ledger.rows.len(), 8);
        assert_eq!(ledger.corpus.subset_tokens, 200);
        assert_eq!(manifest.stages.cost.as_ref().map(|c| c.summary.subset_tokens), Some(200));
        // unchanged inputs: skipped
        let again = run_stage(&run, &mut manifest, &stage, &NoProgress, false).expect("stage");
        assert_eq!(again, Outcome::Skipped);
    }

    #[test]
    fn a_run_without_the_chunk_stage_names_the_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = measure(&RunDir::new(dir.path()), &Manifest::new(json!({}))).expect_err("no chunk stage");
        assert!(e.to_string().contains("manifest.json`") && e.to_string().contains("chunk stage"), "{e}");
    }

    #[test]
    fn config_rejects_unknown_fields_and_fills_defaults() {
        let c: CostConfig = serde_json::from_value(json!({"gpu": "a100"})).expect("partial config");
        assert_eq!((c.model.as_str(), c.gpu.as_str(), c.mfu), ("llama-8b", "a100", 0.4));
        assert!(serde_json::from_value::<CostConfig>(json!({"gpus": "a100"})).is_err());
    }
}
