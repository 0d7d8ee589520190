//! k-means (Lloyd's algorithm, k-means++ seeding) written on matrix products.
//!
//! Every step that touches all points is one product `X · Cᵀ` (squared distance
//! `|x|² + |c|² - 2 x·c`), so an iteration over 5,000 points of 256 dimensions and 10 centroids
//! costs a millisecond; linfa-clustering's k-means, which this replaced, measures each
//! point-centroid distance on its own and took 0.4 s per fit there (ARCHITECTURE.md). The
//! tests check it against linfa's on the same data. Work is shared across the trials of one
//! node: the seeding is drawn once for the largest k, and its first k centres are a k-means++
//! seeding for k; a fit keeps its last distance matrix, from which the silhouette is read.

use ndarray::{Array2, ArrayView2, Axis};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;
use strata_core::vectors::squared_distance;

/// Rows per block when distances to the centroids are computed in parallel.
const BLOCK_ROWS: usize = 4096;

/// A fitted k-means: the centroids, each point's nearest centroid, and the squared distance
/// from each point to each centroid (points × k) as of the last assignment.
pub struct Fit {
    pub centroids: Array2<f32>,
    pub labels: Vec<usize>,
    pub distances: Array2<f32>,
}

impl Fit {
    /// Sum of squared distances of the points to their centroids.
    pub fn inertia(&self) -> f64 {
        self.labels.iter().enumerate().map(|(i, &l)| self.distances[[i, l]] as f64).sum()
    }

    /// The simplified silhouette: mean over points of (b - a) / max(a, b), with a the distance
    /// to the own centroid and b to the nearest other one.
    pub fn simplified_silhouette(&self) -> f32 {
        let mut total = 0.0;
        for (row, &label) in self.distances.axis_iter(Axis(0)).zip(&self.labels) {
            let own = row[label].sqrt();
            let other = row.iter().enumerate().filter(|&(c, _)| c != label).map(|(_, d)| d.sqrt()).fold(f32::MAX, f32::min);
            let denom = own.max(other);
            if denom > 0.0 && other < f32::MAX {
                total += (other - own) / denom;
            }
        }
        total / self.labels.len().max(1) as f32
    }
}

/// k-means++ seeding: `k` rows of `data`, each drawn with probability proportional to its
/// squared distance to the nearest row drawn before. The order matters: any prefix of the
/// seeding is a seeding for that many centres.
pub fn seed_rows(data: ArrayView2<f32>, k: usize, seed: u64) -> Vec<usize> {
    let n = data.nrows();
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut chosen = Vec::with_capacity(k.min(n));
    if n == 0 {
        return chosen;
    }
    chosen.push((rng.next_u64() % n as u64) as usize);
    let mut nearest: Vec<f32> = data.axis_iter(Axis(0)).map(|x| squared(x, data.row(chosen[0]))).collect();
    while chosen.len() < k.min(n) {
        let total: f64 = nearest.iter().map(|&d| d as f64).sum();
        let pick = if total <= 0.0 {
            // Every point sits on a centre already: any point not yet chosen.
            (0..n).find(|i| !chosen.contains(i)).unwrap_or(0)
        } else {
            let mut target = uniform(&mut rng) * total;
            let mut pick = n - 1;
            for (i, &d) in nearest.iter().enumerate() {
                target -= d as f64;
                if target < 0.0 {
                    pick = i;
                    break;
                }
            }
            pick
        };
        chosen.push(pick);
        let centre = data.row(pick);
        nearest.iter_mut().zip(data.axis_iter(Axis(0))).for_each(|(d, x)| *d = d.min(squared(x, centre)));
    }
    chosen
}

/// Lloyd's iterations from `initial` centroids until no centroid moves more than `tolerance`
/// (Euclidean norm of all moves together) or `max_iterations` pass; the fit's labels and
/// distances are those of its final centroids. An emptied cluster keeps its centroid.
pub fn lloyd(data: ArrayView2<f32>, initial: Array2<f32>, max_iterations: u64, tolerance: f32) -> Fit {
    let norms: Vec<f32> = data.axis_iter(Axis(0)).map(|x| x.dot(&x)).collect();
    let mut centroids = initial;
    let mut iterations = 0;
    let mut converged = false;
    loop {
        let distances = distances(data, &norms, centroids.view());
        let labels = nearest(&distances);
        if converged || iterations == max_iterations {
            return Fit { centroids, labels, distances };
        }
        converged = update(data, &labels, &mut centroids) <= tolerance * tolerance;
        iterations += 1;
    }
}

/// The best of `runs` fits (lowest inertia), each from its own k-means++ seeding.
pub fn fit(data: ArrayView2<f32>, k: usize, runs: usize, max_iterations: u64, tolerance: f32, seed: u64) -> Option<Fit> {
    if data.nrows() < k || k == 0 {
        return None;
    }
    let fits: Vec<Fit> = (0..runs.max(1) as u64)
        .into_par_iter()
        .map(|run| {
            let rows = seed_rows(data, k, seed.wrapping_add(run.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            lloyd(data, data.select(Axis(0), &rows), max_iterations, tolerance)
        })
        .collect();
    // The first of the best, so the result does not depend on the threads.
    fits.into_iter().reduce(|best, f| if f.inertia() < best.inertia() { f } else { best })
}

/// The nearest centroid of each row `rows[i]` of `vectors`: one matrix product per block of
/// rows (copied, so memory stays bounded), blocks in parallel.
pub fn assign(vectors: ArrayView2<f32>, rows: &[usize], centroids: ArrayView2<f32>) -> Vec<usize> {
    let blocks: Vec<Vec<usize>> = rows
        .par_chunks(BLOCK_ROWS)
        .map(|block| {
            let block = vectors.select(Axis(0), block);
            let norms: Vec<f32> = block.axis_iter(Axis(0)).map(|x| x.dot(&x)).collect();
            nearest(&distances(block.view(), &norms, centroids))
        })
        .collect();
    blocks.concat()
}

/// Squared distances (points × centroids): `|x|² + |c|² - 2 x·c`, clamped at zero.
fn distances(data: ArrayView2<f32>, norms: &[f32], centroids: ArrayView2<f32>) -> Array2<f32> {
    let centroid_norms: Vec<f32> = centroids.axis_iter(Axis(0)).map(|c| c.dot(&c)).collect();
    let mut products = data.dot(&centroids.t());
    for (mut row, &x) in products.axis_iter_mut(Axis(0)).zip(norms) {
        row.iter_mut().zip(&centroid_norms).for_each(|(d, &c)| *d = (x + c - 2.0 * *d).max(0.0));
    }
    products
}

fn nearest(distances: &Array2<f32>) -> Vec<usize> {
    distances
        .axis_iter(Axis(0))
        .map(|row| row.iter().enumerate().fold((0, f32::MAX), |best, (c, &d)| if d < best.1 { (c, d) } else { best }).0)
        .collect()
}

/// Moves each centroid to the mean of its points; returns the sum of squared moves.
fn update(data: ArrayView2<f32>, labels: &[usize], centroids: &mut Array2<f32>) -> f32 {
    let mut sums = Array2::<f32>::zeros(centroids.raw_dim());
    let mut counts = vec![0usize; centroids.nrows()];
    for (x, &l) in data.axis_iter(Axis(0)).zip(labels) {
        sums.row_mut(l).zip_mut_with(&x, |s, &v| *s += v);
        counts[l] += 1;
    }
    let mut moved = 0.0;
    for (c, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let mean = sums.row(c).mapv(|s| s / count as f32);
        moved += squared(mean.view(), centroids.row(c));
        centroids.row_mut(c).assign(&mean);
    }
    moved
}

/// Squared L2 distance of two rows (rows of standard-layout matrices are contiguous).
fn squared(a: ndarray::ArrayView1<f32>, b: ndarray::ArrayView1<f32>) -> f32 {
    squared_distance(a.as_slice().expect("rows are contiguous"), b.as_slice().expect("rows are contiguous"))
}

/// A uniform draw in [0, 1).
fn uniform(rng: &mut Xoshiro256Plus) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::prelude::{DatasetBase, Fit as _, Predict as _};

    /// Points around `centres` unit directions in 16 dimensions, normalised, from a fixed seed.
    fn blobs(centres: usize, per_centre: usize, spread: f32) -> Array2<f32> {
        let mut rng = Xoshiro256Plus::seed_from_u64(5);
        let dim = 16;
        let mut data = Array2::<f32>::zeros((centres * per_centre, dim));
        for (i, mut row) in data.axis_iter_mut(Axis(0)).enumerate() {
            row[(i / per_centre) % dim] = 1.0;
            row.iter_mut().for_each(|v| *v += spread * (uniform(&mut rng) as f32 - 0.5));
            let norm = row.dot(&row).sqrt();
            row.mapv_inplace(|v| v / norm);
        }
        data
    }

    #[test]
    fn separated_blobs_are_found_whole() {
        let data = blobs(4, 50, 0.3);
        let fit = fit(data.view(), 4, 3, 100, 1e-4, 1).expect("fit");
        for blob in 0..4 {
            let labels: Vec<usize> = fit.labels[blob * 50..(blob + 1) * 50].to_vec();
            assert!(labels.iter().all(|&l| l == labels[0]), "blob {blob} split: {labels:?}");
        }
        assert!(fit.simplified_silhouette() > 0.5, "{}", fit.simplified_silhouette());
        let rows: Vec<usize> = (0..data.nrows()).collect();
        assert_eq!(assign(data.view(), &rows, fit.centroids.view()), fit.labels);
    }

    #[test]
    fn as_good_as_linfa_on_overlapping_clusters() {
        // Overlapping blobs: the fit is a local optimum, so compare the inertia of the best of
        // 5 restarts with linfa-clustering's best of 5 on the same data.
        let data = blobs(8, 100, 1.5);
        for k in [3, 8, 12] {
            let ours = fit(data.view(), k, 5, 100, 1e-4, 9).expect("fit").inertia();
            let model = linfa_clustering::KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(9))
                .n_runs(5)
                .tolerance(1e-4)
                .fit(&DatasetBase::from(data.clone()))
                .expect("linfa");
            let labels = model.predict(&data);
            let theirs: f64 = labels.iter().enumerate().map(|(i, &l)| squared(data.row(i), model.centroids().row(l)) as f64).sum();
            assert!(ours <= theirs * 1.02, "k = {k}: inertia {ours} against linfa's {theirs}");
        }
    }

    #[test]
    fn a_seeding_prefix_is_the_seeding_for_fewer_centres() {
        let data = blobs(5, 20, 0.5);
        let ten = seed_rows(data.view(), 10, 3);
        assert_eq!(seed_rows(data.view(), 4, 3), ten[..4].to_vec());
        let mut distinct = ten.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
    }
}
