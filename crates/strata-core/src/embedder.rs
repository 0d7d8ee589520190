//! The run's embedder as later stages see it: texts in, unit vectors out (taxonomy embeds its
//! candidate label phrases with it, in the space of the chunks' vectors). The CLI hands in
//! strata-embed's model, loaded on first use; stage crates depend only on this trait.

/// Why an embedding call failed (the embedder's own error, kept as the source).
pub type EmbedFailure = Box<dyn std::error::Error + Send + Sync>;

pub trait TextEmbedder: Send + Sync {
    /// One L2-normalised vector per text, in order, of the run's embedding dimension; the same
    /// texts in the same order give the same vectors.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedFailure>;
}
