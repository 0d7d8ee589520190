//! One run against another over the same chunks (another embedder, seed or clustering
//! setting): how well their taxonomies agree level by level, and, when both embedded with
//! the same dimension, how close their vectors are.

use crate::labels::{agreement, Agreement};
use crate::{EvalError, RunData};
use polars::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use strata_core::vectors::dot;

/// What `strata eval --compare OTHER` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunComparison {
    /// The other run directory.
    pub run: String,
    /// Chunks present in both runs (matched by chunk id); the figures are over these.
    pub shared_chunks: usize,
    pub only_here: usize,
    pub only_there: usize,
    /// Agreement at each depth both taxonomies have (NMI, ARI; purity of this run's
    /// clusters with respect to the other's).
    pub levels: Vec<Agreement>,
    /// Cosine between the two runs' vectors of each shared chunk, when the dimensions match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector_cosine: Option<CosineSummary>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CosineSummary {
    pub mean: f64,
    /// First percentile and minimum: where the two embedders disagree most.
    pub p01: f64,
    pub min: f64,
}

pub fn compare_runs(here: &RunData, there: &RunData, there_name: &str) -> Result<RunComparison, EvalError> {
    let index_there: HashMap<&str, usize> = there.chunks.iter().enumerate().map(|(i, c)| (c.chunk_id.as_str(), i)).collect();
    let pairs: Vec<(usize, usize)> =
        here.chunks.iter().enumerate().filter_map(|(i, c)| index_there.get(c.chunk_id.as_str()).map(|&j| (i, j))).collect();
    let mut levels = Vec::new();
    for depth in 1..=here.max_depth().min(there.max_depth()) {
        let (a, b) = (here.clusters_at(depth), there.clusters_at(depth));
        let frame = df!(
            "here" => pairs.iter().map(|&(i, _)| a[i]).collect::<Vec<u32>>(),
            "there" => pairs.iter().map(|&(_, j)| b[j]).collect::<Vec<u32>>(),
        )?;
        levels.push(Agreement { depth, ..agreement(frame.lazy(), "here", "there")? });
    }
    let vector_cosine = (here.vectors.dim() == there.vectors.dim() && !pairs.is_empty()).then(|| {
        let mut cosines: Vec<f64> = pairs.iter().map(|&(i, j)| dot(here.vector(i), there.vector(j)) as f64).collect();
        cosines.sort_by(f64::total_cmp);
        CosineSummary { mean: cosines.iter().sum::<f64>() / cosines.len() as f64, p01: cosines[cosines.len() / 100], min: cosines[0] }
    });
    Ok(RunComparison {
        run: there_name.to_string(),
        shared_chunks: pairs.len(),
        only_here: here.chunks.len() - pairs.len(),
        only_there: there.chunks.len() - pairs.len(),
        levels,
        vector_cosine,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tests::toy;

    #[test]
    fn a_run_agrees_with_itself_and_vectors_match() {
        let data = toy(&[("a", 2, 40), ("a", 3, 40), ("b", 4, 40), ("b", 2, 40)], &[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [1.0, 0.0]]);
        let c = compare_runs(&data, &data, "same").expect("compare");
        assert_eq!((c.shared_chunks, c.only_here, c.only_there), (4, 0, 0));
        assert_eq!(c.levels.len(), 2);
        assert!(c.levels.iter().all(|l| (l.nmi - 1.0).abs() < 1e-9 && (l.ari - 1.0).abs() < 1e-9), "{:?}", c.levels);
        let cos = c.vector_cosine.expect("same dimension");
        assert!((cos.mean - 1.0).abs() < 1e-6 && (cos.min - 1.0).abs() < 1e-6);
    }

    #[test]
    fn chunks_are_matched_by_id_and_unmatched_ones_counted() {
        let here = toy(&[("a", 2, 40), ("a", 3, 40), ("b", 4, 40)], &[[1.0, 0.0]; 3]);
        let mut there = toy(&[("a", 3, 40), ("a", 2, 40), ("b", 4, 40)], &[[0.0, 1.0]; 3]);
        there.chunks[2].chunk_id = "elsewhere".into();
        let c = compare_runs(&here, &there, "other").expect("compare");
        assert_eq!((c.shared_chunks, c.only_here, c.only_there), (2, 1, 1));
        assert_eq!(c.vector_cosine.expect("same dimension").mean, 0.0);
        // Level 1: both shared chunks sit in node 1 on both sides; level 2: leaves swapped,
        // still the same partition.
        assert!((c.levels[1].nmi - 1.0).abs() < 1e-9, "{:?}", c.levels);
    }
}
