//! The static fast path: a table of one vector per vocabulary token, distilled once from
//! all-MiniLM-L6-v2 by `tools/model/distill_static.py` (the Model2Vec idea: each token run
//! through the model alone, PCA, SIF weights by Zipf rank folded into the rows). A text's
//! vector is the sum of its tokens' rows (their weighted mean up to a scale), L2-normalised:
//! no model call, so it costs about as much as tokenising.

use crate::model::{BatchStats, EmbedError, ModelFiles};
use rayon::prelude::*;
use strata_core::tokens::TokenCounter;
use strata_core::Progress;

/// Texts per progress step (the work itself is spread over rayon's pool).
const STEP: usize = 4096;

/// The distilled table and the tokenizer that indexes it.
pub struct StaticEmbedder {
    /// Row-major `[rows, dims]`; row = token id.
    table: Vec<f32>,
    rows: usize,
    dims: usize,
    counter: TokenCounter,
}

#[derive(serde::Deserialize)]
struct TableInfo {
    rows: usize,
    dims: usize,
    dtype: String,
}

impl StaticEmbedder {
    /// Loads `static.f32` as `static.json` describes it, with the model's tokenizer.
    pub fn load(files: &ModelFiles) -> Result<Self, EmbedError> {
        let info_path = files.static_info();
        let info: TableInfo = serde_json::from_slice(&crate::model::read(&info_path)?)
            .map_err(|e| EmbedError::Load { path: info_path.clone(), source: e.into() })?;
        let table_path = files.static_table();
        let bytes = crate::model::read(&table_path)?;
        let bad = |message: String| EmbedError::Load { path: table_path.clone(), source: message.into() };
        if info.dtype != "float32" || info.dims == 0 {
            return Err(bad(format!("`{}` describes a {} table of {} dims; expected float32", info_path.display(), info.dtype, info.dims)));
        }
        if bytes.len() != info.rows * info.dims * 4 {
            return Err(bad(format!(
                "{} bytes, expected {} x {} float32 ({} bytes); rerun `make model`",
                bytes.len(),
                info.rows,
                info.dims,
                info.rows * info.dims * 4
            )));
        }
        let table: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let tokenizer_path = files.tokenizer();
        let counter =
            TokenCounter::from_file(&tokenizer_path).map_err(|e| EmbedError::Load { path: tokenizer_path.clone(), source: e.into() })?;
        let vocab = counter.tokenizer().get_vocab_size(true);
        if vocab != info.rows {
            return Err(bad(format!(
                "{} rows but the tokenizer `{}` has {vocab} tokens; rerun `make model`",
                info.rows,
                tokenizer_path.display()
            )));
        }
        Ok(Self { table, rows: info.rows, dims: info.dims, counter })
    }

    pub fn dim(&self) -> usize {
        self.dims
    }

    /// The vector of one text and its token count. A text without a single known token
    /// (empty, or only characters the vocabulary lacks) gets the first unit vector, so every
    /// vector keeps unit norm.
    pub fn embed_one(&self, text: &str) -> Result<(Vec<f32>, usize), EmbedError> {
        let encoding = self.counter.tokenizer().encode_fast(text, false).map_err(EmbedError::Inference)?;
        let mut v = vec![0.0f32; self.dims];
        for &id in encoding.get_ids() {
            let id = id as usize;
            if id < self.rows {
                let row = &self.table[id * self.dims..(id + 1) * self.dims];
                v.iter_mut().zip(row).for_each(|(a, b)| *a += b);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            v.iter_mut().for_each(|x| *x /= norm);
        } else {
            v.iter_mut().for_each(|x| *x = 0.0);
            v[0] = 1.0;
        }
        Ok((v, encoding.get_ids().len()))
    }

    /// Embeds `texts` in order, in parallel on rayon's pool.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_with_stats(texts, &strata_core::progress::NoProgress)?.0)
    }

    /// Embeds `texts` in order; the stats count tokens (a static table computes no padding).
    pub fn embed_with_stats(&self, texts: &[&str], progress: &dyn Progress) -> Result<(Vec<Vec<f32>>, BatchStats), EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        let mut stats = BatchStats::default();
        progress.start("embed", Some(texts.len() as u64));
        for step in texts.chunks(STEP) {
            let done: Vec<(Vec<f32>, usize)> = step.par_iter().map(|t| self.embed_one(t)).collect::<Result<_, _>>()?;
            for (v, n) in done {
                stats.real_tokens += n as u64;
                vectors.push(v);
            }
            progress.advance(step.len() as u64);
        }
        stats.padded_tokens = stats.real_tokens;
        progress.finish();
        Ok((vectors, stats))
    }
}
