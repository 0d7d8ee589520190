//! Recursive k-means on L2-normalised vectors (L2 distance on the unit sphere ranks like
//! cosine). At each node, k is chosen from a range by the simplified silhouette
//! (distance to the own centroid against the nearest other centroid), among the k whose
//! clusters all reach the minimum node size.

use crate::TaxonomyConfig;
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView2, Axis};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;

/// A node of the tree before labelling: its member rows (ascending) and children.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub members: Vec<usize>,
    pub children: Vec<Cluster>,
}

/// Points used to score a k: enough for a stable silhouette, cheap at any node size.
const SILHOUETTE_SAMPLE: usize = 4000;

pub fn build_tree(vectors: &Array2<f32>, config: &TaxonomyConfig, seed: u64) -> Cluster {
    let all: Vec<usize> = (0..vectors.nrows()).collect();
    split(vectors, all, 0, config, seed)
}

fn split(vectors: &Array2<f32>, members: Vec<usize>, depth: usize, config: &TaxonomyConfig, seed: u64) -> Cluster {
    if depth >= config.depth || members.len() < 2 * config.min_node_size {
        return Cluster { members, children: Vec::new() };
    }
    let Some(groups) = best_partition(vectors, &members, config, seed ^ (members[0] as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ depth as u64) else {
        return Cluster { members, children: Vec::new() };
    };
    let mut children: Vec<Cluster> = groups
        .into_iter()
        .map(|g| split(vectors, g, depth + 1, config, seed))
        .collect();
    // Largest first; ties by first member, so the order is a function of the input alone.
    children.sort_by_key(|c| (std::cmp::Reverse(c.members.len()), c.members[0]));
    Cluster { members, children }
}

/// The partition of `members` with the best simplified silhouette, or `None` when no k in
/// range gives clusters of at least the minimum size.
fn best_partition(vectors: &Array2<f32>, members: &[usize], config: &TaxonomyConfig, seed: u64) -> Option<Vec<Vec<usize>>> {
    let data = vectors.select(Axis(0), members);
    let fit_rows = sample_rows(members.len(), config.sample_size, seed);
    let fit_data = data.select(Axis(0), &fit_rows);
    let score_rows = sample_rows(members.len(), SILHOUETTE_SAMPLE, seed ^ 1);
    let k_max = config.k_max.min(members.len() / config.min_node_size);
    let mut best: Option<(f32, Vec<usize>)> = None;
    for k in config.k_min..=k_max {
        let rng = Xoshiro256Plus::seed_from_u64(seed.wrapping_add(k as u64));
        let Ok(model) = KMeans::params_with_rng(k, rng)
            .max_n_iterations(config.max_iterations)
            .tolerance(1e-4)
            .n_runs(config.n_runs)
            .fit(&DatasetBase::from(fit_data.clone()))
        else {
            continue;
        };
        let labels = model.predict(&data).to_vec();
        let mut sizes = vec![0usize; k];
        labels.iter().for_each(|&l| sizes[l] += 1);
        if sizes.iter().any(|&s| s < config.min_node_size) {
            continue;
        }
        let score = simplified_silhouette(data.view(), &labels, model.centroids().view(), &score_rows);
        tracing::debug!(n = members.len(), k, score, "k-means candidate");
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, labels));
        }
    }
    let (_, labels) = best?;
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut groups = vec![Vec::new(); k];
    for (row, &label) in labels.iter().enumerate() {
        groups[label].push(members[row]);
    }
    Some(groups)
}

/// Mean over `rows` of (b - a) / max(a, b), a = distance to the own centroid, b = to the
/// nearest other centroid.
fn simplified_silhouette(data: ArrayView2<f32>, labels: &[usize], centroids: ArrayView2<f32>, rows: &[usize]) -> f32 {
    let mut total = 0.0;
    for &r in rows {
        let x = data.row(r);
        let mut own = f32::MAX;
        let mut other = f32::MAX;
        for (c, centroid) in centroids.axis_iter(Axis(0)).enumerate() {
            let d = x.iter().zip(centroid.iter()).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
            if c == labels[r] {
                own = d;
            } else {
                other = other.min(d);
            }
        }
        let denom = own.max(other);
        if denom > 0.0 {
            total += (other - own) / denom;
        }
    }
    total / rows.len().max(1) as f32
}

/// Up to `limit` distinct rows of `0..n`, ascending, chosen by a seeded generator.
pub fn sample_rows(n: usize, limit: usize, seed: u64) -> Vec<usize> {
    if n <= limit {
        return (0..n).collect();
    }
    use rand_xoshiro::rand_core::RngCore;
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    // Partial Fisher-Yates over indices.
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..limit {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut out = idx[..limit].to_vec();
    out.sort_unstable();
    out
}
