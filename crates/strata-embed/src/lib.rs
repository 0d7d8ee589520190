//! strata-embed: one L2-normalised vector per chunk from a sentence-embedding model run
//! in-process (all-MiniLM-L6-v2 through onnxruntime, via fastembed), no network.
//!
//! It owns loading the model files prepared by `tools/model/setup.sh`, batching, and
//! `embeddings.parquet`. Each distinct input text is embedded once; texts are batched by
//! length so little compute goes to padding. It does not know where the model cache lives
//! (the CLI passes the paths) nor anything about clustering.

mod model;

pub use model::{Embedder, EmbedError, ModelFiles, MODEL_NAME};

use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use strata_core::records::{ChunkRecord, EmbeddingRecord};
use strata_core::rundir::{EMBEDDINGS, WORK_CHUNKS};
use strata_core::{parquet_io, Stage, StageContext, StageError, StageStats};

/// Which model variant computes the vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelVariant {
    /// all-MiniLM-L6-v2 in fp32 (reference quality).
    Minilm,
    /// The same model with int8 weights (onnxruntime dynamic quantisation): faster, cosine
    /// about 0.99 to the fp32 vectors.
    MinilmInt8,
}

/// How chunks are embedded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    /// Model variant: `minilm` (fp32) or `minilm-int8`.
    pub model: ModelVariant,
    /// Texts per model call; batches hold texts of similar length.
    pub batch_size: usize,
    /// Prefix each chunk with its heading path ("Title > Section") before embedding, so a
    /// chunk that never names its topic still lands near it.
    pub with_headings: bool,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self { model: ModelVariant::Minilm, batch_size: 32, with_headings: true }
    }
}

/// The text the model sees for a chunk.
pub fn model_input(chunk: &ChunkRecord, with_headings: bool) -> String {
    if with_headings && !chunk.heading_path.is_empty() {
        format!("{}\n{}", chunk.heading_path.join(" > "), chunk.text)
    } else {
        chunk.text.clone()
    }
}

/// The embedding stage.
pub struct EmbedStage {
    pub config: EmbedConfig,
    pub files: ModelFiles,
    /// Threads for onnxruntime; 0 lets it choose.
    pub threads: usize,
}

impl Stage for EmbedStage {
    fn name(&self) -> &'static str {
        "embed"
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![EMBEDDINGS]
    }

    fn fingerprint(&self) -> Result<serde_json::Value, StageError> {
        let model = self.files.onnx(self.config.model);
        let hash = strata_core::hash::file_sha256(&model).map_err(|e| EmbedError::Read { path: model.clone(), source: e })?;
        // batch_size changes only speed, never the vectors: it stays out of the fingerprint.
        Ok(json!({"model": self.config.model, "model_sha256": hash, "with_headings": self.config.with_headings}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let chunks: Vec<ChunkRecord> = parquet_io::read_rows(&ctx.run.path(WORK_CHUNKS))?;
        let inputs: Vec<String> = chunks.iter().map(|c| model_input(c, self.config.with_headings)).collect();

        // Embed each distinct input once.
        let mut distinct: Vec<&str> = Vec::new();
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let slots: Vec<usize> = inputs
            .iter()
            .map(|t| *slot_of.entry(t.as_str()).or_insert_with(|| {
                distinct.push(t.as_str());
                distinct.len() - 1
            }))
            .collect();

        let mut embedder = Embedder::load(&self.files, self.config.model, self.threads)?;
        let (vectors, stats) = embedder.embed_by_length(&distinct, self.config.batch_size, ctx.progress)?;
        let dim = embedder.dim();
        let rows: Vec<EmbeddingRecord> = chunks
            .iter()
            .zip(&slots)
            .map(|(c, &s)| EmbeddingRecord { chunk_id: c.chunk_id.clone(), embedding: vectors[s].clone() })
            .collect();
        let metadata = [
            ("model", MODEL_NAME.to_string()),
            ("variant", serde_json::to_string(&self.config.model)?.trim_matches('"').to_string()),
            ("dim", dim.to_string()),
            ("pooling", "mean".to_string()),
            ("normalized", "l2".to_string()),
        ];
        parquet_io::write_rows(&ctx.output(EMBEDDINGS)?, &EmbeddingRecord::fields(dim), &rows, &metadata)?;

        let mut extra = serde_json::Map::new();
        extra.insert("distinct_texts".into(), json!(distinct.len()));
        extra.insert("tokens_computed".into(), json!(stats.padded_tokens));
        extra.insert("tokens_real".into(), json!(stats.real_tokens));
        extra.insert("padding_ratio".into(), json!(stats.padding_ratio()));
        Ok(StageStats { rows_in: chunks.len() as u64, rows_out: rows.len() as u64, extra })
    }
}
