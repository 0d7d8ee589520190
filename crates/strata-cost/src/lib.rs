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

use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use strata_core::ledger::CorpusFigures;
use strata_core::manifest::Manifest;
use strata_core::rundir::{CHUNKS, COST, INDEX_DIR, MANIFEST, SCPT, SSFT};
use strata_core::{RunDir, Stage, StageContext, StageError, StageStats};

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("unknown model preset `{name}`; valid presets: {valid}")]
    UnknownModel { name: String, valid: String },
    #[error("unknown GPU preset `{name}`; valid presets: {valid}")]
    UnknownGpu { name: String, valid: String },
    #[error("invalid cost setting `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
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
}

impl Stage for CostStage {
    fn name(&self) -> &'static str {
        "cost"
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![CHUNKS, SCPT, SSFT, INDEX_DIR]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![COST]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(json!({ "config": self.config }))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let figures = measure(ctx.run)?;
        let n_chunks = figures.n_chunks;
        let ledger = compute(&self.config, figures)?;
        let path = ctx.output(COST).map_err(|source| CostError::Write { path: ctx.run.path(COST), source })?;
        let mut text = serde_json::to_string_pretty(&ledger)
            .map_err(|e| CostError::Write { path: ctx.run.path(COST), source: std::io::Error::other(e) })?;
        text.push('\n');
        std::fs::write(&path, text).map_err(|source| CostError::Write { path: ctx.run.path(COST), source })?;

        let mut stats = StageStats { rows_in: n_chunks, rows_out: ledger.rows.len() as u64, ..Default::default() };
        let c = &ledger.corpus;
        stats.extra.insert("corpus_tokens".into(), json!(c.corpus_tokens));
        stats.extra.insert("subset_tokens".into(), json!(c.subset_tokens));
        stats.extra.insert("ssft_tokens".into(), json!(c.ssft_tokens));
        stats.extra.insert("index_bytes".into(), json!(c.index_bytes));
        Ok(stats)
    }
}

/// The only column the ledger needs from chunks and samples.
#[derive(Deserialize)]
struct Tokens {
    n_tokens: u32,
}

fn token_counts(path: &Path) -> Result<Vec<u32>, CostError> {
    let read = |e: strata_core::parquet_io::ParquetIoError| CostError::Read { path: path.to_path_buf(), source: e.into() };
    let mut counts = Vec::new();
    for batch in strata_core::parquet_io::batches::<Tokens>(path, &["n_tokens"]).map_err(read)? {
        counts.extend(batch.map_err(read)?.into_iter().map(|r| r.n_tokens));
    }
    Ok(counts)
}

/// Measures the corpus figures of a run directory: token counts of `chunks.parquet` and the
/// two training sets, the size of `index/`, and the index stage's seconds from the manifest.
pub fn measure(run: &RunDir) -> Result<CorpusFigures, CostError> {
    let chunks = token_counts(&run.path(CHUNKS))?;
    let scpt = token_counts(&run.path(SCPT))?;
    let ssft = token_counts(&run.path(SSFT))?;
    let sum = |v: &[u32]| v.iter().map(|&t| t as u64).sum::<u64>();
    let corpus_tokens = sum(&chunks);
    let index = run.path(INDEX_DIR);
    let index_bytes = folder_bytes(&index).map_err(|e| CostError::Read { path: index.clone(), source: e.into() })?;
    let manifest_path = run.path(MANIFEST);
    let manifest = Manifest::load(&manifest_path).map_err(|e| CostError::Read { path: manifest_path.clone(), source: e.into() })?;
    let index_build_seconds = manifest.and_then(|m| m.stages.get("index").map(|s| s.seconds)).unwrap_or(0.0);
    Ok(CorpusFigures {
        corpus_tokens,
        subset_tokens: sum(&scpt),
        subset_samples: scpt.len() as u64,
        ssft_tokens: sum(&ssft),
        ssft_samples: ssft.len() as u64,
        mean_chunk_tokens: if chunks.is_empty() { 0.0 } else { corpus_tokens as f64 / chunks.len() as f64 },
        n_chunks: chunks.len() as u64,
        index_bytes,
        index_build_seconds,
    })
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
    use strata_core::manifest::StageRecord;
    use strata_core::parquet_io::write_rows;
    use strata_core::records::{PublishedChunk, Sample};
    use strata_core::stage::{run_stage, Outcome};
    use strata_core::NoProgress;

    fn chunk(id: &str, n_tokens: u32) -> PublishedChunk {
        PublishedChunk {
            chunk_id: id.into(),
            doc_id: "d".into(),
            source: "d.md".into(),
            ordinal: 0,
            heading_path: vec![],
            text: "some text".into(),
            n_tokens,
            byte_start: 0,
            byte_end: 9,
            node_id: 1,
            taxonomy_path: vec!["a".into()],
            duplicate_of: None,
            selected: true,
        }
    }

    fn sample(n_tokens: u32) -> Sample {
        Sample {
            text: "p r".into(),
            prompt: "p".into(),
            response: "r".into(),
            kind: "chunk".into(),
            chunk_id: None,
            node_id: 1,
            taxonomy_path: vec![],
            n_tokens,
            instruction: "p".into(),
            input: String::new(),
            output: "r".into(),
        }
    }

    /// A run directory with the four inputs and a manifest that timed the index stage.
    fn fixture_run(dir: &Path) -> (RunDir, Manifest) {
        let run = RunDir::new(dir);
        let chunks = [chunk("a", 100), chunk("b", 300)];
        write_rows(&run.path(CHUNKS), &PublishedChunk::fields(), &chunks, &[]).expect("chunks");
        write_rows(&run.path(SCPT), &Sample::fields(), &[sample(150), sample(50)], &[]).expect("scpt");
        write_rows(&run.path(SSFT), &Sample::fields(), &[sample(70)], &[]).expect("ssft");
        std::fs::create_dir_all(run.path(INDEX_DIR)).expect("index dir");
        std::fs::write(run.path(INDEX_DIR).join("seg"), [0u8; 1000]).expect("index file");
        let mut manifest = Manifest::new(json!({}));
        manifest.stages.insert("index".into(), StageRecord { seconds: 2.5, ..Default::default() });
        manifest.save(&run.path(MANIFEST)).expect("manifest");
        (run, manifest)
    }

    #[test]
    fn measure_reads_the_run_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (run, _) = fixture_run(dir.path());
        let f = measure(&run).expect("figures");
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
        let stage = CostStage { config: CostConfig::default() };
        let outcome = run_stage(&run, &mut manifest, &stage, &NoProgress, false).expect("stage runs");
        assert_eq!(outcome, Outcome::Ran);
        let text = std::fs::read_to_string(run.path(COST)).expect("cost.json");
        let ledger: Ledger = serde_json::from_str(&text).expect("parses");
        assert!(ledger.rows.len() >= 5);
        assert_eq!(ledger.corpus.subset_tokens, 200);
        assert_eq!(manifest.stages["cost"].extra["subset_tokens"], json!(200));
        // unchanged inputs: skipped
        let again = run_stage(&run, &mut manifest, &stage, &NoProgress, false).expect("stage");
        assert_eq!(again, Outcome::Skipped);
    }

    #[test]
    fn missing_input_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = measure(&RunDir::new(dir.path())).expect_err("no chunks");
        assert!(e.to_string().contains("chunks.parquet`"), "{e}");
    }

    #[test]
    fn config_rejects_unknown_fields_and_fills_defaults() {
        let c: CostConfig = serde_json::from_value(json!({"gpu": "a100"})).expect("partial config");
        assert_eq!((c.model.as_str(), c.gpu.as_str(), c.mfu), ("llama-8b", "a100", 0.4));
        assert!(serde_json::from_value::<CostConfig>(json!({"gpus": "a100"})).is_err());
    }
}
