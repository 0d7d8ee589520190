//! strata-embed: one L2-normalised vector per chunk from a sentence-embedding model run
//! in-process (all-MiniLM-L6-v2 through onnxruntime, via fastembed), no network; or, as a
//! fast path, from a static token table distilled from that model (`model = "static"`).
//!
//! It owns loading the model files prepared by `tools/model/setup.sh`, batching, and
//! `embeddings.parquet`. Each distinct input text is embedded once; texts are batched by
//! length so little compute goes to padding. It does not know where the model cache lives
//! (the CLI passes the paths) nor anything about clustering.

mod cache;
mod model;
mod static_model;

pub use cache::VectorCache;
pub use model::{BatchStats, EmbedError, Embedder, ModelFiles, NeuralEmbedder, MODEL_NAME};
pub use static_model::StaticEmbedder;

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
    /// A static table distilled from the fp32 model (one 256-dim vector per vocabulary token,
    /// `tools/model/distill_static.py`): a chunk is the weighted mean of its tokens' vectors.
    /// Orders of magnitude faster, somewhat lower retrieval quality (BENCHMARKS.md).
    Static,
}

impl ModelVariant {
    /// Whether the variant runs the neural network (and so benefits from the vector cache).
    pub fn is_neural(self) -> bool {
        self != Self::Static
    }
}

/// How chunks are embedded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    /// Model variant: `minilm` (fp32), `minilm-int8`, or `static` (distilled token table).
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

impl EmbedStage {
    fn model_sha256(&self) -> Result<String, EmbedError> {
        let model = self.files.weights(self.config.model);
        strata_core::hash::file_sha256(&model).map_err(|e| EmbedError::Read { path: model.clone(), source: e })
    }
}

/// The embedding stage.
pub struct EmbedStage {
    pub config: EmbedConfig,
    pub files: ModelFiles,
    /// Threads for onnxruntime; 0 lets it choose.
    pub threads: usize,
    /// Folder of the vector cache shared across runs; `None` embeds everything afresh.
    pub cache_dir: Option<std::path::PathBuf>,
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
        // batch_size and the cache change only speed, never the vectors: they stay out.
        let mut fingerprint = json!({"model": self.config.model, "model_sha256": self.model_sha256()?, "with_headings": self.config.with_headings});
        if !self.config.model.is_neural() {
            // The static path tokenises by itself (the neural one's tokenizer is fastembed's
            // copy of the same file, covered by the chunk stage).
            let tokenizer = self.files.tokenizer();
            let hash = strata_core::hash::file_sha256(&tokenizer).map_err(|e| EmbedError::Read { path: tokenizer.clone(), source: e })?;
            fingerprint["tokenizer_sha256"] = json!(hash);
        }
        Ok(fingerprint)
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        // Only the ids and the model inputs are kept of the chunks, read a batch at a time.
        let (mut chunk_ids, mut inputs) = (Vec::new(), Vec::new());
        parquet_io::for_each_rows(&ctx.run.path(WORK_CHUNKS), |batch: Vec<ChunkRecord>| {
            for c in batch {
                inputs.push(model_input(&c, self.config.with_headings));
                chunk_ids.push(c.chunk_id);
            }
            Ok(())
        })?;

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

        // Only texts the cache does not hold go through the model.
        // The static table embeds faster than the cache file reads: it never uses it.
        let mut cache = self
            .cache_dir
            .as_deref()
            .filter(|_| self.config.model.is_neural())
            .map(|dir| self.model_sha256().map(|hash| VectorCache::open(dir, &hash)))
            .transpose()?;
        let keys: Vec<String> = if cache.is_some() { distinct.iter().map(|t| cache::key(t)).collect() } else { Vec::new() };
        let missing: Vec<usize> = (0..distinct.len()).filter(|&i| cache.as_ref().is_none_or(|c| c.get(&keys[i]).is_none())).collect();
        let mut embedder = Embedder::load(&self.files, self.config.model, self.threads)?;
        let dim = embedder.dim();
        let texts: Vec<&str> = missing.iter().map(|&i| distinct[i]).collect();
        let (fresh, stats) = embedder.embed_by_length(&texts, self.config.batch_size, ctx.progress)?;
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); distinct.len()];
        for (&i, v) in missing.iter().zip(fresh) {
            vectors[i] = v;
        }
        if let Some(cache) = cache.as_mut() {
            for (i, v) in vectors.iter_mut().enumerate() {
                match cache.get(&keys[i]) {
                    Some(cached) if v.is_empty() => *v = cached.clone(),
                    _ => cache.insert(keys[i].clone(), v.clone()),
                }
            }
            if !missing.is_empty() {
                cache.save(dim)?;
            }
        }
        // Rows are made a row group at a time: repeated texts share one vector until written.
        let group = |range: std::ops::Range<usize>| -> Vec<EmbeddingRecord> {
            range.map(|i| EmbeddingRecord { chunk_id: chunk_ids[i].clone(), embedding: vectors[slots[i]].clone() }).collect()
        };
        let metadata = [
            ("model", if self.config.model.is_neural() { MODEL_NAME.to_string() } else { format!("{MODEL_NAME} (static distillation)") }),
            ("variant", serde_json::to_string(&self.config.model)?.trim_matches('"').to_string()),
            ("dim", dim.to_string()),
            ("pooling", if self.config.model.is_neural() { "mean" } else { "sif-weighted mean of static token vectors" }.to_string()),
            ("normalized", "l2".to_string()),
        ];
        parquet_io::write_row_groups(&ctx.output(EMBEDDINGS)?, &EmbeddingRecord::fields(dim), chunk_ids.len(), group, &metadata)?;

        let mut extra = serde_json::Map::new();
        extra.insert("distinct_texts".into(), json!(distinct.len()));
        extra.insert("embedded_texts".into(), json!(missing.len()));
        extra.insert("cached_texts".into(), json!(distinct.len() - missing.len()));
        extra.insert("tokens_computed".into(), json!(stats.padded_tokens));
        extra.insert("tokens_real".into(), json!(stats.real_tokens));
        extra.insert("padding_ratio".into(), json!(stats.padding_ratio()));
        Ok(StageStats { rows_in: chunk_ids.len() as u64, rows_out: chunk_ids.len() as u64, extra })
    }
}
