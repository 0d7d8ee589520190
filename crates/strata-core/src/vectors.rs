//! Small numeric helpers the stages share: products of unit vectors and seeded sampling.
//! Sampling is part of the determinism contract: the same seed picks the same rows anywhere.

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;

/// Row-major vectors of one width, row `i` being chunk `i` of the run (what
/// `parquet_io::VectorsInStep` gathers from `embeddings.parquet`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    values: Vec<f32>,
    dim: usize,
}

impl Matrix {
    /// A matrix of rows of `dim` values; `values.len()` must be a multiple of `dim`.
    pub fn new(values: Vec<f32>, dim: usize) -> Self {
        assert!(dim > 0 || values.is_empty(), "a matrix with values needs a width");
        assert!(values.len().is_multiple_of(dim.max(1)), "{} values do not make rows of {dim}", values.len());
        Self { values, dim }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn rows(&self) -> usize {
        self.values.len() / self.dim.max(1)
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// One unit vector per group of consecutive rows: the normalised mean of rows
    /// `start .. start + len` for each `(start, len)` (a passage from its chunks).
    pub fn group_means(&self, groups: impl Iterator<Item = (usize, usize)>) -> Matrix {
        let mut values = Vec::new();
        for (start, len) in groups {
            let mut mean = vec![0f32; self.dim];
            for i in start..start + len {
                mean.iter_mut().zip(self.row(i)).for_each(|(m, x)| *m += x);
            }
            values.extend(unit(mean));
        }
        Matrix::new(values, self.dim)
    }

    /// Row `i` plus `weight` times row `of[i]` of `other`, normalised: a passage's vector
    /// drawn towards its document's.
    pub fn blend(&self, other: &Matrix, of: &[usize], weight: f32) -> Matrix {
        let mut values = Vec::with_capacity(self.values.len());
        for (i, &o) in of.iter().enumerate() {
            values.extend(unit(self.row(i).iter().zip(other.row(o)).map(|(a, b)| a + weight * b).collect()));
        }
        Matrix::new(values, self.dim)
    }

    /// The values and the width, e.g. for an `ndarray` view of the same memory.
    pub fn into_parts(self) -> (Vec<f32>, usize) {
        (self.values, self.dim)
    }
}

/// `v` scaled to length 1 (a zero vector stays zero).
fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Dot product (cosine for unit vectors), in eight lanes so the compiler vectorises it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = a.chunks_exact(8).remainder().iter().zip(b.chunks_exact(8).remainder()).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Squared L2 distance, in eight lanes like [`dot`].
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            let d = x[k] - y[k];
            lanes[k] += d * d;
        }
    }
    let tail: f32 = a.chunks_exact(8).remainder().iter().zip(b.chunks_exact(8).remainder()).map(|(x, y)| (x - y) * (x - y)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Up to `limit` distinct indices of `0..n`, ascending, drawn by a generator seeded with
/// `seed` (a partial Fisher-Yates shuffle); all of them when `n <= limit`.
pub fn sample_indices(n: usize, limit: usize, seed: u64) -> Vec<usize> {
    if n <= limit {
        return (0..n).collect();
    }
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..limit {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(limit);
    idx.sort_unstable();
    idx
}

/// `items` in an order drawn by a generator seeded with `seed` (Fisher-Yates): the same seed
/// gives the same order anywhere.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_rows_are_slices_of_its_width() {
        let m = Matrix::new((0..6).map(|i| i as f32).collect(), 3);
        assert_eq!((m.rows(), m.dim()), (2, 3));
        assert_eq!(m.row(1), &[3.0, 4.0, 5.0]);
        assert_eq!(Matrix::default().rows(), 0);
    }

    #[test]
    fn group_means_are_unit_means_of_consecutive_rows() {
        let m = Matrix::new(vec![1.0, 0.0, 0.0, 1.0, 3.0, 4.0], 2);
        let g = m.group_means([(0, 2), (2, 1)].into_iter());
        assert_eq!(g.rows(), 2);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((g.row(0)[0] - h).abs() < 1e-6 && (g.row(0)[1] - h).abs() < 1e-6);
        assert!((g.row(1)[0] - 0.6).abs() < 1e-6 && (g.row(1)[1] - 0.8).abs() < 1e-6);
        let docs = Matrix::new(vec![0.0, 1.0], 2);
        let b = Matrix::new(vec![1.0, 0.0], 2).blend(&docs, &[0], 1.0);
        assert!((b.row(0)[0] - h).abs() < 1e-6 && (b.row(0)[1] - h).abs() < 1e-6);
    }

    #[test]
    fn products_handle_tails() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![1.0f32; 19];
        assert_eq!(dot(&a, &a), (0..19).map(|i| (i * i) as f32).sum::<f32>());
        assert_eq!(squared_distance(&a, &b), (0..19).map(|i| ((i - 1) * (i - 1)) as f32).sum::<f32>());
    }

    #[test]
    fn samples_are_seeded_distinct_and_ascending() {
        assert_eq!(sample_indices(5, 10, 1), vec![0, 1, 2, 3, 4]);
        let s = sample_indices(1000, 50, 7);
        assert_eq!(s.len(), 50);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s.iter().all(|&i| i < 1000));
        assert_eq!(s, sample_indices(1000, 50, 7));
        assert_ne!(s, sample_indices(1000, 50, 8));
    }
}
