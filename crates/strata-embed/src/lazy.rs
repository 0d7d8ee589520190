//! The run's model behind strata-core's `TextEmbedder`, for stages after `embed` (taxonomy's
//! label phrases) and for eval's questions: loaded on the first call only, so a skipped stage
//! never loads it.

use crate::{Batching, EmbedConfig, Embedder, ModelFiles, ModelVariant};
use std::sync::Mutex;
use strata_core::{EmbedFailure, NoProgress, Progress, TextEmbedder};

pub struct LazyEmbedder {
    files: ModelFiles,
    variant: ModelVariant,
    batching: Batching,
    input_tokens: usize,
    threads: usize,
    model: Mutex<Option<Embedder>>,
}

impl LazyEmbedder {
    /// `threads` as for [`Embedder::load`].
    pub fn new(files: ModelFiles, variant: ModelVariant, config: &EmbedConfig, threads: usize) -> Self {
        let (batching, input_tokens) = (config.batching(), config.input_tokens);
        Self { files, variant, batching, input_tokens, threads, model: Mutex::new(None) }
    }

    /// Embeds `texts` in order (length-sorted batches), reporting to `progress`; the model is
    /// loaded on the first call.
    pub fn embed_with_progress(&self, texts: &[&str], progress: &dyn Progress) -> Result<Vec<Vec<f32>>, EmbedFailure> {
        let mut model = self.model.lock().map_err(|_| "a previous embedding call panicked")?;
        let model = match &mut *model {
            Some(m) => m,
            None => model.insert(Embedder::load_with(&self.files, self.variant, self.threads, self.input_tokens)?),
        };
        Ok(model.embed_by_length(texts, self.batching, progress)?.0)
    }
}

impl TextEmbedder for LazyEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedFailure> {
        self.embed_with_progress(texts, &NoProgress)
    }
}
