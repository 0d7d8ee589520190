//! `strata search`: a run searched by BM25, dense or hybrid (default), optionally within a
//! taxonomy subtree. [`Engine`] (the run opened with the embedder that made its
//! vectors) is shared with `strata serve`.

use crate::cli::SearchArgs;
use anyhow::{bail, Context, Result};
use std::path::Path;
use strata_core::TextEmbedder;
use strata_embed::{LazyEmbedder, ModelVariant};
use strata_index::{Hit, Mode, Retriever};

/// A run ready for queries: its index, its vectors, and its own embedder for the queries.
pub struct Engine {
    pub retriever: Retriever,
    embedder: LazyEmbedder,
}

impl Engine {
    /// Opens `run`, checking that the prepared model is the one that embedded the chunks.
    pub fn open(run: &Path, threads: usize) -> Result<Self> {
        let retriever = Retriever::open(run).with_context(|| format!("run directory `{}`", run.display()))?;
        let meta = &retriever.dense.meta;
        let variant: ModelVariant = serde_json::from_value(serde_json::Value::String(meta.variant.clone()))
            .with_context(|| format!("`{}` names an unknown model variant `{}`", run.join("dense/meta.json").display(), meta.variant))?;
        let files = crate::model::model_files()?;
        let weights = files.weights(variant);
        let sha = strata_core::hash::file_sha256(&weights).with_context(|| format!("reading the model `{}`", weights.display()))?;
        if !meta.model_sha256.is_empty() && sha != meta.model_sha256 {
            bail!("the prepared model `{}` is not the one that embedded this run's chunks (sha256 {} against {}); rerun the run's embed stage", weights.display(), sha, meta.model_sha256);
        }
        Ok(Self { retriever, embedder: LazyEmbedder::new(files, variant, &strata_embed::EmbedConfig::default(), threads) })
    }

    /// The query's vector, when `mode` needs one.
    pub fn embed(&self, query: &str, mode: Mode) -> Result<Option<Vec<f32>>> {
        if !mode.needs_vector() {
            return Ok(None);
        }
        let mut vectors = self.embedder.embed(&[query]).map_err(|e| anyhow::anyhow!(e)).context("embedding the query")?;
        Ok(vectors.pop())
    }

    pub fn search(&self, query: &str, mode: Mode, under: Option<&str>, k: usize) -> Result<Vec<Hit>> {
        let vector = self.embed(query, mode)?;
        Ok(self.retriever.search(query, vector.as_deref(), mode, under, k)?)
    }
}

pub fn search(args: &SearchArgs) -> Result<()> {
    let mode: Mode = args.mode.parse()?;
    let hits = if mode.needs_vector() {
        Engine::open(&args.run, 0)?.search(&args.query, mode, args.under.as_deref(), args.k)?
    } else {
        // BM25 needs no model.
        Retriever::open(&args.run)?.search(&args.query, None, mode, args.under.as_deref(), args.k)?
    };
    if args.json {
        for h in &hits {
            outln!("{}", serde_json::to_string(h)?)?;
        }
        return Ok(());
    }
    if hits.is_empty() {
        outln!("no hits")?;
    }
    for (rank, h) in hits.iter().enumerate() {
        let excerpt: String = h.text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
        outln!("{:>2}. {:.3}  {}  [{}]", rank + 1, h.score, h.chunk_id, h.taxonomy)?;
        outln!("    {excerpt}")?;
    }
    Ok(())
}
