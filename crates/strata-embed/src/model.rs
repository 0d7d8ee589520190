//! The model: files on disk, the onnxruntime session (through fastembed), and length-sorted
//! batching; `Embedder`, the one type callers use, over it and the static table.

use crate::static_model::StaticEmbedder;
use crate::ModelVariant;
use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use strata_core::tokens::TokenCounter;
use strata_core::Progress;

/// Name recorded in `embeddings.parquet`'s metadata.
pub const MODEL_NAME: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Longest input, in tokens with [CLS] and [SEP], that the model was trained on.
const MAX_LENGTH: usize = 256;

/// A cause from another library, kept whole for the error chain.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model file `{path}` is missing; run `make model` (tools/model/setup.sh) to prepare it")]
    Missing { path: PathBuf },
    #[error("failed to read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The message is kept as text: onnxruntime is loaded once per process and its outcome
    /// cached, and ort's error cannot be cloned.
    #[error("failed to load onnxruntime from `{path}`: {message}")]
    Runtime { path: PathBuf, message: String },
    #[error("failed to load the model `{path}`")]
    Load {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error("the model failed on a batch")]
    Inference(#[source] BoxError),
}

/// Where the prepared model lives: the model folder and the onnxruntime library.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub onnxruntime: PathBuf,
}

impl ModelFiles {
    /// The ONNX graph of a neural variant; for `Static`, the fp32 graph it was distilled from.
    pub fn onnx(&self, variant: ModelVariant) -> PathBuf {
        self.dir.join(match variant {
            ModelVariant::Minilm | ModelVariant::Static => "model.onnx",
            ModelVariant::MinilmInt8 => "model_int8.onnx",
        })
    }

    /// The file whose bytes decide the variant's vectors (its hash keys fingerprints and
    /// the vector cache).
    pub fn weights(&self, variant: ModelVariant) -> PathBuf {
        match variant {
            ModelVariant::Static => self.static_table(),
            _ => self.onnx(variant),
        }
    }

    /// The distilled static table (`tools/model/distill_static.py`).
    pub fn static_table(&self) -> PathBuf {
        self.dir.join("static.f32")
    }

    /// Shape and provenance of the static table.
    pub fn static_info(&self) -> PathBuf {
        self.dir.join("static.json")
    }

    pub fn tokenizer(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, EmbedError> {
        read(&self.dir.join(name))
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    if !path.exists() {
        return Err(EmbedError::Missing { path: path.to_path_buf() });
    }
    std::fs::read(path).map_err(|source| EmbedError::Read { path: path.to_path_buf(), source })
}

/// The onnxruntime environment, loaded once per process from the given library.
fn environment(dylib: &Path) -> Result<ort::environment::Environment, EmbedError> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        if !dylib.exists() {
            return Err("file not found; run `make model`".to_string());
        }
        ort::init_from(dylib).map_err(|e| e.to_string())?.with_name("strata").build().map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|message| EmbedError::Runtime { path: dylib.to_path_buf(), message })
}

/// Most texts and most tokens (padding included) per model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub max_texts: usize,
    pub max_tokens: usize,
}

impl Batching {
    /// `order` (indices sorted by ascending `lengths`) cut into consecutive batches: each as
    /// long as its texts times its longest stays within `max_tokens` and its texts within
    /// `max_texts`; a text longer than `max_tokens` goes alone.
    pub fn split<'a>(&self, order: &'a [usize], lengths: &[usize]) -> Vec<&'a [usize]> {
        let mut batches = Vec::new();
        let (mut start, mut longest) = (0, 0);
        for (end, &i) in order.iter().enumerate() {
            let (size, wider) = (end - start, longest.max(lengths[i]));
            if size > 0 && (size + 1 > self.max_texts || (size + 1) * wider > self.max_tokens) {
                batches.push(&order[start..end]);
                (start, longest) = (end, lengths[i]);
            } else {
                longest = wider;
            }
        }
        if start < order.len() {
            batches.push(&order[start..]);
        }
        batches
    }
}

/// What a batch run cost: real tokens against tokens computed (padding included).
#[derive(Debug, Default, Clone, Copy)]
pub struct BatchStats {
    pub real_tokens: u64,
    pub padded_tokens: u64,
}

impl BatchStats {
    /// Share of computed tokens that were padding.
    pub fn padding_ratio(&self) -> f64 {
        if self.padded_tokens == 0 {
            0.0
        } else {
            1.0 - self.real_tokens as f64 / self.padded_tokens as f64
        }
    }
}

/// A loaded embedder: the neural model (fp32 or int8) or the static table distilled from
/// it (boxed: both are large). Both give L2-normalised vectors; their dimensions differ (`dim`).
pub enum Embedder {
    Neural(Box<NeuralEmbedder>),
    Static(Box<StaticEmbedder>),
}

impl Embedder {
    /// Loads `variant` from the prepared model folder. `threads` is onnxruntime's intra-op
    /// thread count (0 lets it choose); the static table runs on rayon's pool.
    pub fn load(files: &ModelFiles, variant: ModelVariant, threads: usize) -> Result<Self, EmbedError> {
        Self::load_with(files, variant, threads, MAX_LENGTH)
    }

    /// [`Embedder::load`] with the neural model reading at most `input_tokens` tokens of a
    /// text ([CLS] and [SEP] included, 256 at most); the static table reads every token.
    pub fn load_with(files: &ModelFiles, variant: ModelVariant, threads: usize, input_tokens: usize) -> Result<Self, EmbedError> {
        Ok(match variant {
            ModelVariant::Static => Self::Static(Box::new(StaticEmbedder::load(files)?)),
            _ => Self::Neural(Box::new(NeuralEmbedder::load(files, variant, threads, input_tokens.clamp(16, MAX_LENGTH))?)),
        })
    }

    pub fn dim(&self) -> usize {
        match self {
            Self::Neural(e) => e.dim(),
            Self::Static(e) => e.dim(),
        }
    }

    /// Embeds `texts` in the given order (`batch_size` texts per model call; the static
    /// table ignores it).
    pub fn embed(&mut self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Self::Neural(e) => e.embed(texts, batch_size),
            Self::Static(e) => e.embed(texts),
        }
    }

    /// Embeds `texts` (the neural model in length-sorted batches), returning vectors in the
    /// input order and the tokens computed.
    pub fn embed_by_length(
        &mut self,
        texts: &[&str],
        batching: Batching,
        progress: &dyn Progress,
    ) -> Result<(Vec<Vec<f32>>, BatchStats), EmbedError> {
        match self {
            Self::Neural(e) => e.embed_by_length(texts, batching, progress),
            Self::Static(e) => e.embed_with_stats(texts, progress),
        }
    }
}

/// all-MiniLM-L6-v2 through onnxruntime.
pub struct NeuralEmbedder {
    model: TextEmbedding,
    counter: TokenCounter,
    /// Tokens the model reads of a text, [CLS] and [SEP] included.
    input_tokens: usize,
}

impl NeuralEmbedder {
    pub fn load(files: &ModelFiles, variant: ModelVariant, threads: usize, input_tokens: usize) -> Result<Self, EmbedError> {
        let env = environment(&files.onnxruntime)?;
        let onnx_path = files.onnx(variant);
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: files.read("tokenizer.json")?,
            config_file: files.read("config.json")?,
            special_tokens_map_file: files.read("special_tokens_map.json")?,
            tokenizer_config_file: files.read("tokenizer_config.json")?,
        };
        let user_model = UserDefinedEmbeddingModel::new(read(&onnx_path)?, tokenizer_files).with_pooling(Pooling::Mean);
        // No spin-waiting: on a busy machine spinning worker threads starve each other.
        let mut options = InitOptionsUserDefined::new()
            .with_max_length(input_tokens)
            .with_environment(env)
            .with_session_config("session.intra_op.allow_spinning", "0");
        if threads > 0 {
            options = options.with_intra_threads(threads);
        }
        let model = TextEmbedding::try_new_from_user_defined(user_model, options)
            .map_err(|e| EmbedError::Load { path: onnx_path.clone(), source: e.into() })?;
        let tokenizer_path = files.tokenizer();
        let counter = TokenCounter::from_file(&tokenizer_path).map_err(|e| EmbedError::Load { path: tokenizer_path, source: e.into() })?;
        Ok(Self { model, counter, input_tokens })
    }

    pub fn dim(&self) -> usize {
        384
    }

    /// Embeds `texts` in the given order, one call per batch.
    pub fn embed(&mut self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let vectors = self.model.embed(texts, Some(batch_size.max(1))).map_err(|e| EmbedError::Inference(e.into()))?;
        Ok(vectors.into_iter().map(normalise).collect())
    }

    /// Embeds `texts`, batching texts of similar token length together so batches carry
    /// little padding; returns vectors in the input order.
    pub fn embed_by_length(
        &mut self,
        texts: &[&str],
        batching: Batching,
        progress: &dyn Progress,
    ) -> Result<(Vec<Vec<f32>>, BatchStats), EmbedError> {
        use rayon::prelude::*;
        let lengths: Vec<usize> =
            texts.par_iter().map(|t| self.counter.count(t).map(|n| (n + 2).min(self.input_tokens)).unwrap_or(self.input_tokens)).collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| (lengths[i], i));

        let mut stats = BatchStats::default();
        let mut vectors = vec![Vec::new(); texts.len()];
        progress.start("embed", Some(texts.len() as u64));
        for batch in batching.split(&order, &lengths) {
            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap_or(0);
            stats.real_tokens += batch.iter().map(|&i| lengths[i] as u64).sum::<u64>();
            stats.padded_tokens += (longest * batch.len()) as u64;
            for (&i, v) in batch.iter().zip(self.embed(&batch_texts, batch.len())?) {
                vectors[i] = v;
            }
            progress.advance(batch.len() as u64);
        }
        progress.finish();
        Ok((vectors, stats))
    }
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_bounded_by_tokens_and_texts() {
        // Ascending lengths: short texts go many to a batch, long ones few.
        let lengths = [10, 10, 10, 10, 50, 50, 60, 200, 300];
        let order: Vec<usize> = (0..lengths.len()).collect();
        let batching = Batching { max_texts: 3, max_tokens: 120 };
        let got: Vec<Vec<usize>> = batching.split(&order, &lengths).into_iter().map(<[usize]>::to_vec).collect();
        // Three texts at most; then 10 and 50 (2 x 50), 50 and 60 (2 x 60 = 120, the limit);
        // 200 and 300 exceed the budget alone and go alone.
        assert_eq!(got, vec![vec![0, 1, 2], vec![3, 4], vec![5, 6], vec![7], vec![8]]);
        assert!(Batching { max_texts: 4, max_tokens: 100 }.split(&[], &[]).is_empty());
    }
}
