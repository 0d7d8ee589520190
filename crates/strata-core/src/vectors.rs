//! Small numeric helpers the stages share: products of unit vectors, seeded sampling, and
//! rows of vectors spilled to a scratch file. Sampling is part of the determinism contract: the
//! same seed picks the same rows anywhere.

use crate::parquet_io::ParquetIoError;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use std::io::{BufReader, BufWriter, Read, Seek, Write};

/// A row of a run (a chunk's or a passage's position) with its leaf and its vector.
pub type LeafRow = (usize, u32, Vec<f32>);

/// Rows written in order to a scratch file (`StageContext::scratch_file`) and read back in
/// batches: for vectors too many to hold, grouped as a pass meets them.
pub struct Spill {
    file: BufWriter<std::fs::File>,
    dim: usize,
    rows: usize,
}

/// A row read back from a [`Spill`]: its position, leaf, what the writer kept with it
/// (`tag`) and its vector.
pub struct Spilled {
    pub row: usize,
    pub leaf: u32,
    pub tag: u64,
    pub vector: Vec<f32>,
}

/// Bytes before a spilled row's vector: its row, leaf and tag.
const SPILLED_HEADER: usize = 8 + 4 + 8;

impl Spill {
    pub fn new(file: std::fs::File) -> Self {
        Self { file: BufWriter::new(file), dim: 0, rows: 0 }
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn write(&mut self, row: usize, leaf: u32, tag: u64, vector: &[f32]) -> std::io::Result<()> {
        self.dim = vector.len();
        self.rows += 1;
        self.file.write_all(&(row as u64).to_le_bytes())?;
        self.file.write_all(&leaf.to_le_bytes())?;
        self.file.write_all(&tag.to_le_bytes())?;
        vector.iter().try_for_each(|x| self.file.write_all(&x.to_le_bytes()))
    }

    /// The rows in the order written, `batch_rows` at a time, each batch handed over (the last
    /// may be shorter or empty).
    pub fn read_back<E: From<std::io::Error>>(mut self, batch_rows: usize, f: impl FnMut(Vec<Spilled>) -> Result<(), E>) -> Result<(), E> {
        self.read_written(batch_rows, f)
    }

    /// The rows written so far, as [`Spill::read_back`] reads them; more may be written after.
    pub fn read_written<E: From<std::io::Error>>(
        &mut self,
        batch_rows: usize,
        mut f: impl FnMut(Vec<Spilled>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.file.flush()?;
        let file = self.file.get_mut();
        file.rewind()?;
        let mut reader = BufReader::new(&mut *file);
        let mut record = vec![0u8; SPILLED_HEADER + 4 * self.dim];
        let mut batch = Vec::with_capacity(batch_rows);
        loop {
            match reader.read_exact(&mut record) {
                Ok(()) => batch.push(Spilled {
                    row: u64::from_le_bytes(record[..8].try_into().expect("8 bytes")) as usize,
                    leaf: u32::from_le_bytes(record[8..12].try_into().expect("4 bytes")),
                    tag: u64::from_le_bytes(record[12..SPILLED_HEADER].try_into().expect("8 bytes")),
                    vector: record[SPILLED_HEADER..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            if batch.len() == batch_rows {
                f(std::mem::replace(&mut batch, Vec::with_capacity(batch_rows)))?;
            }
        }
        drop(reader);
        file.seek(std::io::SeekFrom::End(0))?;
        f(batch)
    }
}

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
            values.extend(blend(self.row(i), other.row(o), weight));
        }
        Matrix::new(values, self.dim)
    }

    /// The values and the width, e.g. for an `ndarray` view of the same memory.
    pub fn into_parts(self) -> (Vec<f32>, usize) {
        (self.values, self.dim)
    }
}

/// Consecutive rows of the run's chunk vectors, as a pass over `embeddings.parquet` reads them
/// (`parquet_io::for_each_vector_batch`): rows `first .. first + len`, addressed by run row.
#[derive(Debug, Clone, Copy)]
pub struct VectorRows<'a> {
    first: usize,
    dim: usize,
    values: &'a [f32],
}

impl<'a> VectorRows<'a> {
    /// Rows from run row `first`, `dim` values each.
    pub fn new(first: usize, dim: usize, values: &'a [f32]) -> Self {
        assert!(dim > 0 && values.len().is_multiple_of(dim), "{} values do not make rows of {dim}", values.len());
        Self { first, dim, values }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The run rows held.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.values.len() / self.dim
    }

    /// Run row `r`, which must be held.
    pub fn row(&self, r: usize) -> &'a [f32] {
        let i = r - self.first;
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// [`Matrix::group_means`] of rows that arrive in order, a batch at a time: the same vectors,
/// summed in the same order, each handed on as its group's last row comes, holding one sum.
pub struct GroupMeans<'a> {
    /// `(start, len)` per group, by start, not overlapping, read as they are needed.
    groups: Box<dyn Iterator<Item = Result<(usize, usize), ParquetIoError>> + 'a>,
    /// The group rows go to now (none once every group is handed on), read on first use.
    current: Option<Option<(usize, usize)>>,
    next: usize,
    sum: Vec<f32>,
    dim: usize,
}

impl GroupMeans<'static> {
    pub fn new(groups: Vec<(usize, usize)>) -> Self {
        Self::over(groups.into_iter().map(Ok))
    }
}

impl<'a> GroupMeans<'a> {
    /// Groups read from a stream (e.g. a file's rows) as the rows reach them: none is held
    /// but the current one.
    pub fn over(groups: impl Iterator<Item = Result<(usize, usize), ParquetIoError>> + 'a) -> Self {
        Self { groups: Box::new(groups), current: None, next: 0, sum: Vec::new(), dim: 0 }
    }

    fn current(&mut self) -> Result<Option<(usize, usize)>, ParquetIoError> {
        if self.current.is_none() {
            self.current = Some(self.groups.next().transpose()?);
        }
        Ok(self.current.flatten())
    }

    /// Adds the rows; `done(group, mean)` is called for each group that ends, in order.
    pub fn add<E: From<ParquetIoError>>(
        &mut self,
        rows: &VectorRows,
        mut done: impl FnMut(usize, Vec<f32>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.dim == 0 {
            self.dim = rows.dim();
            self.sum = vec![0f32; self.dim];
        }
        for r in rows.range() {
            while self.current()?.is_some_and(|(start, len)| start + len <= r) {
                self.close(&mut done)?;
            }
            if self.current()?.is_some_and(|(start, _)| r >= start) {
                self.sum.iter_mut().zip(rows.row(r)).for_each(|(m, x)| *m += x);
            }
            if self.current()?.is_some_and(|(start, len)| start + len == r + 1) {
                self.close(&mut done)?;
            }
        }
        Ok(())
    }

    fn close<E: From<ParquetIoError>>(&mut self, done: &mut impl FnMut(usize, Vec<f32>) -> Result<(), E>) -> Result<(), E> {
        let sum = std::mem::replace(&mut self.sum, vec![0f32; self.dim]);
        self.next += 1;
        self.current = Some(self.groups.next().transpose()?);
        done(self.next - 1, unit(sum))
    }

    /// Hands on the groups not yet handed on (none once every row has come).
    pub fn finish<E: From<ParquetIoError>>(mut self, mut done: impl FnMut(usize, Vec<f32>) -> Result<(), E>) -> Result<(), E> {
        while self.current()?.is_some() {
            self.close(&mut done)?;
        }
        Ok(())
    }
}

/// `v` plus `weight` times `towards`, normalised: one row of [`Matrix::blend`].
pub fn blend(v: &[f32], towards: &[f32], weight: f32) -> Vec<f32> {
    unit(v.iter().zip(towards).map(|(a, b)| a + weight * b).collect())
}

/// `v` scaled to length 1 (a zero vector stays zero).
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
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
    // A partial Fisher-Yates shuffle of 0..n whose moved positions alone are held (a position
    // not in `moved` holds its own index), so that it holds `limit` entries, not `n`.
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut moved: std::collections::HashMap<usize, usize> = std::collections::HashMap::with_capacity(2 * limit);
    let mut idx = Vec::with_capacity(limit);
    for i in 0..limit {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        let at_j = moved.get(&j).copied().unwrap_or(j);
        moved.insert(j, moved.get(&i).copied().unwrap_or(i));
        idx.push(at_j);
    }
    idx.sort_unstable();
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_means_of_rows_in_batches_are_those_of_the_whole_matrix() {
        let values: Vec<f32> = (0..40).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
        let whole = Matrix::new(values.clone(), 4);
        let groups = vec![(0, 3), (3, 1), (4, 4), (8, 2)];
        let expected = whole.group_means(groups.iter().copied());
        for batch in [1, 3, 4, 10] {
            let mut streamed = GroupMeans::new(groups.clone());
            let mut means = Vec::new();
            let mut keep = |_: usize, mean: Vec<f32>| -> Result<(), ParquetIoError> {
                means.extend(mean);
                Ok(())
            };
            for (i, rows) in values.chunks(batch * 4).enumerate() {
                streamed.add(&VectorRows::new(i * batch, 4, rows), &mut keep).expect("add");
            }
            streamed.finish(&mut keep).expect("finish");
            assert_eq!(Matrix::new(means, 4), expected, "batches of {batch} rows");
        }
    }

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
        // The shuffle holding only its moved positions draws what the whole shuffle draws.
        let whole = |n: usize, limit: usize, seed: u64| {
            let mut rng = Xoshiro256Plus::seed_from_u64(seed);
            let mut idx: Vec<usize> = (0..n).collect();
            (0..limit).for_each(|i| idx.swap(i, i + (rng.next_u64() % (n - i) as u64) as usize));
            idx.truncate(limit);
            idx.sort_unstable();
            idx
        };
        for (n, limit, seed) in [(1000, 50, 7), (10, 9, 1), (64, 63, 3), (5000, 1000, 11), (2, 1, 0)] {
            assert_eq!(sample_indices(n, limit, seed), whole(n, limit, seed), "{n} {limit} {seed}");
        }
    }
}
