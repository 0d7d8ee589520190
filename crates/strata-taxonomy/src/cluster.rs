//! Recursive k-means on L2-normalised vectors (L2 distance on the unit sphere ranks like
//! cosine). At each node, k is chosen from a range by the simplified silhouette
//! (distance to the own centroid against the nearest other centroid), among the k whose
//! clusters all reach the minimum node size: the largest k within a tolerance of the best
//! score.
//!
//! The cost is bounded per node whatever the corpus size: each candidate k is tried once on a
//! small sample (the trials run in parallel), the chosen k is refitted with restarts on a
//! larger bounded sample, and every member is then assigned to its nearest centroid.

use crate::TaxonomyConfig;
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView2, Axis, CowArray, Ix2};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;
use strata_core::vectors::{sample_indices, squared_distance};

/// A node of the tree before labelling: its member rows (ascending) and children.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub members: Vec<usize>,
    pub children: Vec<Cluster>,
}

impl Cluster {
    /// The same tree over other rows: each member `m` becomes the rows `rows(m)`, in order.
    pub fn expand(&self, rows: &dyn Fn(usize) -> std::ops::Range<usize>) -> Cluster {
        Cluster {
            members: self.members.iter().flat_map(|&m| rows(m)).collect(),
            children: self.children.iter().map(|c| c.expand(rows)).collect(),
        }
    }
}

/// Points each candidate k is fitted and scored on: about 500 per cluster at the largest k,
/// enough to rank the k, and cheap at any node size.
const TRIAL_SAMPLE: usize = 5000;

pub fn build_tree(vectors: &Array2<f32>, config: &TaxonomyConfig, seed: u64) -> Cluster {
    let all: Vec<usize> = (0..vectors.nrows()).collect();
    split(vectors, all, 0, config, seed)
}

fn split(vectors: &Array2<f32>, members: Vec<usize>, depth: usize, config: &TaxonomyConfig, seed: u64) -> Cluster {
    if depth >= config.depth || members.len() < 2 * config.min_node_size {
        return Cluster { members, children: Vec::new() };
    }
    let Some(groups) =
        best_partition(vectors, &members, config, seed ^ (members[0] as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ depth as u64)
    else {
        return Cluster { members, children: Vec::new() };
    };
    // Siblings are independent (each seeded by its own first member): split them in parallel.
    let mut children: Vec<Cluster> = groups.into_par_iter().map(|g| split(vectors, g, depth + 1, config, seed)).collect();
    // Largest first; ties by first member, so the order is a function of the input alone.
    children.sort_by_key(|c| (std::cmp::Reverse(c.members.len()), c.members[0]));
    Cluster { members, children }
}

/// Fits k-means with `runs` seeded restarts; `None` when linfa refuses (too few points).
fn fit(data: ArrayView2<f32>, k: usize, runs: usize, config: &TaxonomyConfig, seed: u64) -> Option<Array2<f32>> {
    let rng = Xoshiro256Plus::seed_from_u64(seed.wrapping_add(k as u64));
    let model = KMeans::params_with_rng(k, rng)
        .max_n_iterations(config.max_iterations)
        .tolerance(1e-4)
        .n_runs(runs)
        .fit(&DatasetBase::from(data))
        .ok()?;
    Some(model.centroids().to_owned())
}

/// Each member's nearest centroid, or `None` when a cluster falls under the minimum node size.
fn assign(vectors: &Array2<f32>, members: &[usize], centroids: &Array2<f32>, min_size: usize) -> Option<Vec<usize>> {
    let labels: Vec<usize> = members.par_iter().map(|&m| nearest(row(vectors, m), centroids)).collect();
    let mut sizes = vec![0usize; centroids.nrows()];
    labels.iter().for_each(|&l| sizes[l] += 1);
    sizes.iter().all(|&s| s >= min_size).then_some(labels)
}

fn row(vectors: &Array2<f32>, m: usize) -> &[f32] {
    vectors.row(m).to_slice().expect("rows are contiguous")
}

/// The rows `members[p]` for each `p` of `picks` (ascending), as a matrix to fit on: a copy,
/// bounded by the sample size, except for the whole matrix, which is only viewed.
fn sample_rows<'a>(vectors: &'a Array2<f32>, members: &[usize], picks: &[usize]) -> CowArray<'a, f32, Ix2> {
    if picks.len() == vectors.nrows() {
        return vectors.view().into();
    }
    vectors.select(Axis(0), &picks.iter().map(|&p| members[p]).collect::<Vec<_>>()).into()
}

fn nearest(x: &[f32], centroids: &Array2<f32>) -> usize {
    let mut best = (f32::MAX, 0);
    for (c, centroid) in centroids.axis_iter(Axis(0)).enumerate() {
        let d = squared_distance(x, centroid.as_slice().expect("rows are contiguous"));
        if d < best.0 {
            best = (d, c);
        }
    }
    best.1
}

/// The partition of `members` with the best simplified silhouette, or `None` when no k in
/// range gives clusters of at least the minimum size.
fn best_partition(vectors: &Array2<f32>, members: &[usize], config: &TaxonomyConfig, seed: u64) -> Option<Vec<Vec<usize>>> {
    // Members are read in place; only the samples k-means fits on are copied.
    let k_max = config.k_max.min(members.len() / config.min_node_size);
    // Phase 1: every k once on a small sample, scored on it; sizes checked on all members.
    let trial = sample_rows(vectors, members, &sample_indices(members.len(), TRIAL_SAMPLE, seed ^ 1));
    let scored: Vec<(f32, usize)> = (config.k_min..=k_max)
        .into_par_iter()
        .filter_map(|k| {
            let centroids = fit(trial.view(), k, 1, config, seed)?;
            assign(vectors, members, &centroids, config.min_node_size)?;
            let trial_labels: Vec<usize> =
                trial.axis_iter(Axis(0)).map(|x| nearest(x.as_slice().expect("contiguous"), &centroids)).collect();
            let score = simplified_silhouette(trial.view(), &trial_labels, centroids.view());
            tracing::debug!(n = members.len(), k, score, "k-means candidate");
            Some((score, k))
        })
        .collect();
    // The finest k whose score is within the tolerance of the best: the simplified silhouette
    // is flat across k on real text and favours k = 2, which makes a taxonomy too coarse to use.
    let best = scored.iter().map(|s| s.0).fold(f32::MIN, f32::max);
    let k = scored.iter().filter(|s| s.0 >= best - config.silhouette_tolerance).map(|s| s.1).max()?;
    // Phase 2: the chosen k refitted with restarts on the larger sample, then every member assigned.
    let fit_data = sample_rows(vectors, members, &sample_indices(members.len(), config.sample_size, seed));
    let labels = fit(fit_data.view(), k, config.n_runs, config, seed).and_then(|c| assign(vectors, members, &c, config.min_node_size));
    drop(fit_data);
    // The refit may (rarely) leave a cluster under the minimum: keep the trial's partition then.
    let labels = match labels {
        Some(l) => l,
        None => assign(vectors, members, &fit(trial.view(), k, 1, config, seed)?, config.min_node_size)?,
    };
    let mut groups = vec![Vec::new(); k];
    for (row, &label) in labels.iter().enumerate() {
        groups[label].push(members[row]);
    }
    Some(groups)
}

/// Mean over the rows of (b - a) / max(a, b), a = distance to the own centroid, b = to the
/// nearest other centroid.
fn simplified_silhouette(data: ArrayView2<f32>, labels: &[usize], centroids: ArrayView2<f32>) -> f32 {
    let mut total = 0.0;
    for (x, &label) in data.axis_iter(Axis(0)).zip(labels) {
        let x = x.as_slice().expect("rows are contiguous");
        let mut own = f32::MAX;
        let mut other = f32::MAX;
        for (c, centroid) in centroids.axis_iter(Axis(0)).enumerate() {
            let d = squared_distance(x, centroid.as_slice().expect("rows are contiguous")).sqrt();
            if c == label {
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
    total / labels.len().max(1) as f32
}
