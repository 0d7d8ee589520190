//! Retrieval quality from ranked hits: recall@1/5/10 and MRR, where a hit is a returned chunk
//! of the question's document; latency quantiles.

use serde::Serialize;
use strata_core::vectors::sample_indices;

/// Up to `max` of `items`, drawn by a seeded generator, in their original order.
pub fn sample<T: Clone>(items: &[T], max: usize, seed: u64) -> Vec<T> {
    sample_indices(items.len(), max, seed).into_iter().map(|i| items[i].clone()).collect()
}

/// Retrieval scores over a set of questions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetrievalScores {
    #[serde(rename = "recall@1")]
    pub recall_at_1: f64,
    #[serde(rename = "recall@5")]
    pub recall_at_5: f64,
    #[serde(rename = "recall@10")]
    pub recall_at_10: f64,
    /// Mean reciprocal rank of the first hit among the returned chunks (0 when none hits);
    /// with ten returned chunks, MRR@10.
    pub mrr: f64,
    pub questions: usize,
    /// Milliseconds per search (the query already embedded), median and 99th percentile.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Scores rankings: `ranked[i]` holds the document ids of the chunks returned for the
/// question whose answer is in `expected[i]`, best first.
pub fn score_rankings<S: AsRef<str>>(expected: &[&str], ranked: &[Vec<S>]) -> RetrievalScores {
    let n = expected.len().min(ranked.len());
    let first_hit: Vec<Option<usize>> =
        expected.iter().zip(ranked).map(|(want, hits)| hits.iter().position(|d| d.as_ref() == *want)).collect();
    let share = |f: &dyn Fn(usize) -> f64| first_hit.iter().map(|r| r.map_or(0.0, f)).sum::<f64>() / n.max(1) as f64;
    RetrievalScores {
        recall_at_1: share(&|r| (r < 1) as u8 as f64),
        recall_at_5: share(&|r| (r < 5) as u8 as f64),
        recall_at_10: share(&|r| (r < 10) as u8 as f64),
        mrr: share(&|r| 1.0 / (r + 1) as f64),
        questions: n,
        p50_ms: 0.0,
        p99_ms: 0.0,
    }
}

/// The `q`-quantile (0..=1) of `values` by the nearest-rank method; 0 for none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n => sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_and_mrr_on_a_toy_ranking() {
        let expected = ["a", "b", "c", "d"];
        let ranked = vec![
            vec!["a", "x"],                          // rank 1
            vec!["x", "y", "b"],                     // rank 3
            vec!["x", "x", "x", "x", "x", "x", "c"], // rank 7
            vec!["x"; 10],                           // miss
        ];
        let s = score_rankings(&expected, &ranked);
        assert_eq!((s.recall_at_1, s.recall_at_5, s.recall_at_10), (0.25, 0.5, 0.75));
        assert!((s.mrr - (1.0 + 1.0 / 3.0 + 1.0 / 7.0) / 4.0).abs() < 1e-12);
        assert_eq!(s.questions, 4);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!((quantile(&v, 0.5), quantile(&v, 0.99), quantile(&v, 1.0)), (50.0, 99.0, 100.0));
        assert_eq!((quantile(&[3.0], 0.5), quantile(&[], 0.5)), (3.0, 0.0));
    }

    #[test]
    fn sampling_is_seeded() {
        let items: Vec<u32> = (0..100).collect();
        let a = sample(&items, 10, 7);
        assert_eq!(a, sample(&items, 10, 7));
        assert!(a.len() == 10 && a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample(&items[..5], 10, 7), items[..5].to_vec());
    }
}
