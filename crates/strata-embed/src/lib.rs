//! strata-embed: one L2-normalised vector per chunk from a sentence-embedding model run
//! in-process (all-MiniLM-L6-v2 through onnxruntime, via fastembed), no network; or, as a
//! fast path, from a static token table distilled from that model (`model = "static"`).
//!
//! It owns loading the model files prepared by `tools/model/setup.sh`, batching, and
//! `embeddings.parquet`, and the same model for later stages' texts ([`LazyEmbedder`]). Each
//! distinct input text is embedded once; texts are batched by length so little compute goes
//! to padding. It does not know where the model cache lives
//! (the CLI passes the paths) nor anything about clustering.

mod cache;
mod lazy;
mod merge;
mod model;
mod static_model;

pub use cache::VectorCache;
pub use lazy::LazyEmbedder;
pub use merge::MergeEmbeddings;
pub use model::{BatchStats, Batching, EmbedError, Embedder, ModelFiles, NeuralEmbedder, MODEL_NAME};
pub use static_model::StaticEmbedder;

use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use strata_core::parquet_io::RowWriter;
use strata_core::records::{ChunkRecord, EmbeddingRecord};
use strata_core::rundir::{EMBEDDINGS, WORK_CHUNKS};
use strata_core::summary::EmbedSummary;
use strata_core::Progress;
use strata_core::{parquet_io, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

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
    /// Most texts per model call; batches hold texts of similar length.
    pub batch_size: usize,
    /// Most tokens per model call, padding included (texts × the longest): bounds the
    /// model's working memory, which grows with them, while short texts go many to a call.
    pub batch_tokens: usize,
    /// Tokens of a chunk the neural model reads, [CLS] and [SEP] included (at most 256, the
    /// model's limit; chunks are cut to fit it). Fewer is faster; BENCHMARKS.md ("Fewer
    /// tokens") measures what it costs in quality. The static table reads every token.
    pub input_tokens: usize,
    /// Prefix each chunk with its heading path ("Title > Section") before embedding, so a
    /// chunk that never names its topic still lands near it.
    pub with_headings: bool,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self { model: ModelVariant::Minilm, batch_size: 256, batch_tokens: 2048, input_tokens: 256, with_headings: true }
    }
}

impl EmbedConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(16..=FULL_INPUT).contains(&self.input_tokens) {
            return Err(format!("embed.input_tokens = {} must be in [16, {FULL_INPUT}]", self.input_tokens));
        }
        if self.batch_size == 0 || self.batch_tokens == 0 {
            return Err("embed.batch_size and embed.batch_tokens must be at least 1".into());
        }
        Ok(())
    }

    pub fn batching(&self) -> Batching {
        Batching { max_texts: self.batch_size.max(1), max_tokens: self.batch_tokens.max(1) }
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

/// The model's whole input: the default, under which cached vectors and fingerprints are
/// those of the runs before `input_tokens` existed.
pub(crate) const FULL_INPUT: usize = 256;

impl EmbedStage {
    fn model_sha256(&self) -> Result<String, EmbedError> {
        let model = self.files.weights(self.config.model);
        strata_core::hash::file_sha256(&model).map_err(|e| EmbedError::Read { path: model.clone(), source: e })
    }
}

/// What the embed stage reads and writes, in a run or merged from shards.
const READS: [&str; 1] = [WORK_CHUNKS];
const WRITES: [&str; 1] = [EMBEDDINGS];

/// The embedding stage.
pub struct EmbedStage {
    pub config: EmbedConfig,
    pub files: ModelFiles,
    /// Threads for onnxruntime; 0 lets it choose.
    pub threads: usize,
    /// Folder of the vector cache shared across runs; `None` embeds everything afresh.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Chunks embedded together ([`WINDOW_CHUNKS`] in a run): the stage holds one window's
    /// texts at a time; inputs are sorted by length and deduplicated within and across windows.
    pub window_chunks: usize,
}

impl Stage for EmbedStage {
    fn name(&self) -> StageName {
        StageName::Embed
    }

    fn reads(&self) -> Vec<&'static str> {
        READS.to_vec()
    }

    fn writes(&self) -> Vec<&'static str> {
        WRITES.to_vec()
    }

    fn fingerprint(&self) -> Result<serde_json::Value, StageError> {
        // Batching and the cache change speed and memory, not the vectors: they stay out. (The
        // fp32 and static vectors are the same in any batch; int8 quantises each batch's
        // activations with one scale, so its vectors move a little with the batch's other
        // texts: cosine above 0.98, docs/SHARDING.md.)
        let mut fingerprint =
            json!({"model": self.config.model, "model_sha256": self.model_sha256()?, "with_headings": self.config.with_headings});
        if self.config.model.is_neural() && self.config.input_tokens != FULL_INPUT {
            fingerprint["input_tokens"] = json!(self.config.input_tokens);
        }
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
        let model_sha256 = self.model_sha256()?;
        // Vectors of earlier runs are reused for the neural models; the static table embeds
        // faster than the cache file reads, so it only dedupes within the run.
        let mut cache = match self.cache_dir.as_deref().filter(|_| self.config.model.is_neural()) {
            Some(dir) => VectorCache::open(dir, &model_sha256, self.config.input_tokens),
            None => VectorCache::in_memory(),
        };
        let mut embedder = Embedder::load_with(&self.files, self.config.model, self.threads, self.config.input_tokens)?;
        let dim = embedder.dim();
        let metadata = [
            ("model", if self.config.model.is_neural() { MODEL_NAME.to_string() } else { format!("{MODEL_NAME} (static distillation)") }),
            ("variant", serde_json::to_string(&self.config.model)?.trim_matches('"').to_string()),
            ("dim", dim.to_string()),
            ("model_sha256", model_sha256),
            ("pooling", if self.config.model.is_neural() { "mean" } else { "sif-weighted mean of static token vectors" }.to_string()),
            ("normalized", "l2".to_string()),
        ];
        let mut out = RowWriter::create(&ctx.output(EMBEDDINGS)?, &EmbeddingRecord::fields(dim), &metadata)?;
        let mut run = EmbedRun {
            embedder: &mut embedder,
            cache: &mut cache,
            batching: self.config.batching(),
            seen: HashSet::new(),
            embedded: 0,
            stats: BatchStats::default(),
        };

        // Chunks are embedded a window at a time (ids and model inputs only), sorted by length
        // within the window, so memory holds one window of text, never the corpus.
        let mut window: Vec<(String, String)> = Vec::new();
        for batch in parquet_io::batches::<ChunkRecord>(&ctx.run.path(WORK_CHUNKS), &[])? {
            for c in batch? {
                window.push((model_input(&c, self.config.with_headings), c.chunk_id));
                if window.len() >= self.window_chunks.max(1) {
                    run.embed_window(&window, &mut out, ctx.progress)?;
                    window.clear();
                }
            }
        }
        run.embed_window(&window, &mut out, ctx.progress)?;
        let (rows, stats) = (out.rows(), run.stats);
        let (distinct, embedded) = (run.seen.len(), run.embedded);
        out.close()?;
        if embedded > 0 {
            cache.save(dim)?;
        }

        let summary = EmbedSummary {
            distinct_texts: distinct as u64,
            embedded_texts: embedded as u64,
            cached_texts: (distinct - embedded) as u64,
            tokens_computed: stats.padded_tokens,
            tokens_real: stats.real_tokens,
            padding_ratio: stats.padding_ratio(),
        };
        Ok(StageStats { rows_in: rows, rows_out: rows, summary: StageSummary::Embed(summary) })
    }
}

/// Chunks embedded together in a run: enough that length-sorted batches carry almost no
/// padding (whole MedQuAD, 28,530 chunks, is one window), small enough that their texts are
/// a few tens of MB.
pub const WINDOW_CHUNKS: usize = 65_536;

/// The embedding of one stage run, window after window.
struct EmbedRun<'a> {
    embedder: &'a mut Embedder,
    cache: &'a mut VectorCache,
    batching: Batching,
    /// Keys of the distinct inputs met so far.
    seen: HashSet<String>,
    /// Distinct inputs that went through the model.
    embedded: usize,
    stats: BatchStats,
}

impl EmbedRun<'_> {
    /// Embeds the inputs of `window` (input, chunk id) the cache does not hold, each distinct
    /// one once, and writes a row per chunk in window order.
    fn embed_window(
        &mut self,
        window: &[(String, String)],
        out: &mut RowWriter<EmbeddingRecord>,
        progress: &dyn Progress,
    ) -> Result<(), StageError> {
        let cache = &mut *self.cache;
        let keys: Vec<String> = window.iter().map(|(input, _)| cache::key(input)).collect();
        let mut missing: Vec<usize> = Vec::new();
        let mut queued: HashSet<&str> = HashSet::new();
        for (i, key) in keys.iter().enumerate() {
            self.seen.insert(key.clone());
            if cache.get(key).is_none() && queued.insert(key) {
                missing.push(i);
            }
        }
        let texts: Vec<&str> = missing.iter().map(|&i| window[i].0.as_str()).collect();
        let (fresh, stats) = self.embedder.embed_by_length(&texts, self.batching, progress)?;
        self.stats.real_tokens += stats.real_tokens;
        self.stats.padded_tokens += stats.padded_tokens;
        self.embedded += missing.len();
        for (&i, v) in missing.iter().zip(fresh) {
            cache.insert(keys[i].clone(), v);
        }
        for ((_, chunk_id), key) in window.iter().zip(&keys) {
            let embedding = cache.get(key).ok_or("a vector went missing from the cache")?.clone();
            out.push(EmbeddingRecord { chunk_id: chunk_id.clone(), embedding })?;
        }
        Ok(())
    }
}
