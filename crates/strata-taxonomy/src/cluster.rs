//! Recursive k-means on L2-normalised vectors (L2 distance on the unit sphere ranks like
//! cosine). At each node, k is chosen from a range by the simplified silhouette
//! (distance to the own centroid against the nearest other centroid), among the k whose
//! clusters all reach the minimum node size: the largest k within a tolerance of the best
//! score.
//!
//! The cost is bounded per node whatever the corpus size: each candidate k is tried once on a
//! small sample from one shared seeding (the trials run in parallel) and scored from the
//! fit's own distances; the chosen k is refitted with restarts on a larger bounded sample,
//! and every member is then assigned to its nearest centroid in one pass.

use crate::kmeans;
use crate::TaxonomyConfig;
use ndarray::{Array2, Axis, CowArray, Ix2};
use rayon::prelude::*;
use strata_core::vectors::{sample_indices, squared_distance};

/// A node of the tree before labelling: its member rows (ascending), children, and the
/// centroid its parent's split gave it (empty for the root). Saved (the fit stage's file) with
/// each centroid's values as their bits, so that it reads back exactly.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Cluster {
    pub members: Vec<usize>,
    pub children: Vec<Cluster>,
    #[serde(with = "f32_bits")]
    pub centroid: Vec<f32>,
}

mod f32_bits {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(values: &[f32], s: S) -> Result<S::Ok, S::Error> {
        values.iter().map(|v| v.to_bits()).collect::<Vec<u32>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        Ok(Vec::<u32>::deserialize(d)?.into_iter().map(f32::from_bits).collect())
    }
}

impl Cluster {
    fn leaf(members: Vec<usize>) -> Self {
        Cluster { members, children: Vec::new(), centroid: Vec::new() }
    }

    /// The leaves in depth-first order.
    pub fn leaves(&self) -> Vec<&Cluster> {
        match self.children.is_empty() {
            true => vec![self],
            false => self.children.iter().flat_map(Cluster::leaves).collect(),
        }
    }

    /// Where `v` goes in a fitted tree: from the root, at each split the child whose centroid
    /// is nearest (the first on a tie). The positions taken.
    pub fn descend(&self, v: &[f32]) -> Vec<u8> {
        let (mut node, mut path) = (self, Vec::new());
        while !node.children.is_empty() {
            let distances = node.children.iter().map(|c| squared_distance(v, &c.centroid)).enumerate();
            let (best, _) = distances.min_by(|a, b| a.1.total_cmp(&b.1)).expect("children");
            path.push(best as u8);
            node = &node.children[best];
        }
        path
    }

    /// Each leaf's path from the root ([`Self::descend`]), in [`Self::leaves`]' order.
    pub fn leaf_paths(&self) -> Vec<Vec<u8>> {
        if self.children.is_empty() {
            return vec![Vec::new()];
        }
        let below =
            self.children.iter().enumerate().flat_map(|(i, c)| c.leaf_paths().into_iter().map(move |p| [vec![i as u8], p].concat()));
        below.collect()
    }
}

/// Points each candidate k is fitted and scored on: about 500 per cluster at the largest k,
/// enough to rank the k, and cheap at any node size.
const TRIAL_SAMPLE: usize = 5000;

pub fn build_tree(vectors: &Array2<f32>, config: &TaxonomyConfig, seed: u64) -> Cluster {
    build_tree_on_sample(vectors, config, seed, vectors.nrows())
}

/// The tree fitted on `sample`, rows drawn from `population` vectors: each node's size, which
/// the size rules (`min_node_size`, and k at most a node's size over it) judge, is its
/// sample rows scaled to the population.
pub fn build_tree_on_sample(sample: &Array2<f32>, config: &TaxonomyConfig, seed: u64, population: usize) -> Cluster {
    let all: Vec<usize> = (0..sample.nrows()).collect();
    let scale = Scale(population as f64 / sample.nrows().max(1) as f64);
    split(sample, all, 0, config, seed, scale)
}

/// Population rows a sample row stands for (1 when the sample is the population).
#[derive(Clone, Copy)]
struct Scale(f64);

impl Scale {
    fn size(self, sample_rows: usize) -> usize {
        if self.0 == 1.0 {
            sample_rows
        } else {
            (sample_rows as f64 * self.0).round() as usize
        }
    }
}

fn split(vectors: &Array2<f32>, members: Vec<usize>, depth: usize, config: &TaxonomyConfig, seed: u64, scale: Scale) -> Cluster {
    if depth >= config.depth || scale.size(members.len()) < 2 * config.min_node_size {
        return Cluster::leaf(members);
    }
    let node_seed = seed ^ (members[0] as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ depth as u64;
    let Some((groups, centroids)) = best_partition(vectors, &members, config, node_seed, scale) else {
        return Cluster::leaf(members);
    };
    // Siblings are independent (each seeded by its own first member): split them in parallel.
    let centroids: Vec<Vec<f32>> = centroids.outer_iter().map(|c| c.to_vec()).collect();
    let mut children: Vec<Cluster> = groups
        .into_par_iter()
        .zip(centroids)
        .map(|(g, centroid)| Cluster { centroid, ..split(vectors, g, depth + 1, config, seed, scale) })
        .collect();
    // Largest first; ties by first member, so the order is a function of the input alone.
    children.sort_by_key(|c| sibling_order(c.members.len(), c.members[0]));
    Cluster { members, children, centroid: Vec::new() }
}

/// How siblings are ordered (by `build_tree`, and by `Flat::of` for a tree the passages were
/// placed in): more members first, then the one whose first member comes first.
pub(crate) fn sibling_order(members: usize, first: usize) -> (std::cmp::Reverse<usize>, usize) {
    (std::cmp::Reverse(members), first)
}

/// The rows `members[p]` for each `p` of `picks` (ascending), as a matrix to fit on: a copy,
/// bounded by the sample size, except for the whole matrix, which is only viewed.
fn sample_rows<'a>(vectors: &'a Array2<f32>, members: &[usize], picks: &[usize]) -> CowArray<'a, f32, Ix2> {
    if picks.len() == vectors.nrows() {
        return vectors.view().into();
    }
    vectors.select(Axis(0), &picks.iter().map(|&p| members[p]).collect::<Vec<_>>()).into()
}

/// Whether every cluster of `labels` (over a sample of the node's `n` members, or all of
/// them) holds, scaled to the node, at least `min_size` members.
fn large_enough(labels: &[usize], k: usize, n: usize, min_size: usize) -> bool {
    let mut sizes = vec![0usize; k];
    labels.iter().for_each(|&l| sizes[l] += 1);
    sizes.iter().all(|&s| s * n >= min_size * labels.len())
}

/// The partition of `members` with the best simplified silhouette and its centroids, or
/// `None` when no k in range gives clusters of at least the minimum size.
fn best_partition(
    vectors: &Array2<f32>,
    members: &[usize],
    config: &TaxonomyConfig,
    seed: u64,
    scale: Scale,
) -> Option<(Vec<Vec<usize>>, Array2<f32>)> {
    let n = members.len();
    let size = scale.size(n);
    let k_max = config.k_max.min(size / config.min_node_size);
    if k_max < config.k_min {
        return None;
    }
    let (iterations, tolerance) = (config.max_iterations, 1e-4);
    // Phase 1: every k once on a small sample, from one shared seeding, scored on the sample
    // by the silhouette of the fit's own distances; sizes estimated from the sample.
    let trial_picks = sample_indices(n, TRIAL_SAMPLE, seed ^ 1);
    let trial = sample_rows(vectors, members, &trial_picks);
    let seeds = kmeans::seed_rows(trial.view(), k_max, seed);
    let mut scored: Vec<(f32, usize, Array2<f32>)> = (config.k_min..=k_max.min(seeds.len()))
        .into_par_iter()
        .filter_map(|k| {
            let fit = kmeans::lloyd(trial.view(), trial.select(Axis(0), &seeds[..k]), iterations, tolerance);
            large_enough(&fit.labels, k, size, config.min_node_size).then(|| {
                let score = fit.simplified_silhouette();
                tracing::debug!(n, k, score, "k-means candidate");
                (score, k, fit.centroids)
            })
        })
        .collect();
    // The finest k whose score is within the tolerance of the best: the simplified silhouette
    // is flat across k on real text and favours k = 2, which makes a taxonomy too coarse to use.
    let best = scored.iter().map(|s| s.0).fold(f32::MIN, f32::max);
    scored.retain(|s| s.0 >= best - config.silhouette_tolerance);
    scored.sort_by_key(|s| std::cmp::Reverse(s.1));
    // Phase 2: the chosen k refitted with restarts on the larger sample, then every member
    // assigned in one pass (none when the sample is every member). Where the refit leaves a
    // cluster under the minimum, the trial's centroids are taken; where they do too (the
    // sample misjudged the sizes), the choice passes to the next k.
    let fit_picks = sample_indices(n, config.sample_size, seed);
    let fit_data = sample_rows(vectors, members, &fit_picks);
    let labels_of = |centroids: &Array2<f32>| kmeans::assign(vectors.view(), members, centroids.view());
    for (_, k, trial_centroids) in scored {
        let refit = kmeans::fit(fit_data.view(), k, config.n_runs, iterations, tolerance, seed.wrapping_add(k as u64))
            .map(|fit| (if fit_picks.len() == n { fit.labels } else { labels_of(&fit.centroids) }, fit.centroids))
            .filter(|(labels, _)| large_enough(labels, k, size, config.min_node_size));
        let trial =
            || Some((labels_of(&trial_centroids), trial_centroids.clone())).filter(|(l, _)| large_enough(l, k, size, config.min_node_size));
        let Some((labels, centroids)) = refit.or_else(trial) else {
            continue;
        };
        let mut groups = vec![Vec::new(); k];
        for (row, &label) in labels.iter().enumerate() {
            groups[label].push(members[row]);
        }
        return Some((groups, centroids));
    }
    None
}
