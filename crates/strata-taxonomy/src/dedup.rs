//! Duplicates: exact (same text) anywhere in the corpus, near (cosine at or above a
//! threshold) within a leaf, where near-duplicates land in practice; comparing within leaves
//! keeps the work far below all pairs.

use crate::runs::DuplicateRuns;
use crate::TaxonomyError;
use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;
use std::collections::{hash_map::Entry, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;
use strata_core::StageContext;

/// The rows that duplicate an earlier row, each with the row it duplicates (always a kept one,
/// so every group points at one kept row), in row order. Few rows of a corpus are duplicates,
/// so only those are held, not an entry per row.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Duplicates(Vec<(usize, usize)>);

impl Duplicates {
    /// How many rows are duplicates.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The row `row` duplicates, if it is a duplicate.
    pub fn of(&self, row: usize) -> Option<usize> {
        self.0.binary_search_by_key(&row, |&(r, _)| r).ok().map(|i| self.0[i].1)
    }

    /// The pairs, each row with the row it duplicates, in row order.
    pub(crate) fn into_pairs(self) -> Vec<(usize, usize)> {
        self.0
    }

    /// Adds duplicates of rows not yet in, in any order.
    pub fn extend(&mut self, found: impl IntoIterator<Item = (usize, usize)>) {
        self.0.extend(found);
        self.0.sort_unstable();
    }
}

/// The exact duplicates among the rows of the content hashes `read` gives (in row order; it is
/// called twice): each row with the first row of the same hash. The hashes are held once, as
/// 8 bytes a row, to find the ones that repeat; the second read looks those up alone, so the
/// table of first rows holds only repeated hashes.
pub fn exact_duplicates<E, I: Iterator<Item = Result<u64, E>>>(mut read: impl FnMut() -> Result<I, E>) -> Result<Duplicates, E> {
    let mut sorted: Vec<u64> = read()?.collect::<Result<_, E>>()?;
    sorted.sort_unstable();
    let repeated: HashSet<u64> = sorted.windows(2).filter(|pair| pair[0] == pair[1]).map(|pair| pair[0]).collect();
    drop(sorted);
    let mut first_with_text: HashMap<u64, usize> = HashMap::with_capacity(repeated.len());
    let mut found = Vec::new();
    for (row, hash) in read()?.enumerate() {
        let hash = hash?;
        if !repeated.contains(&hash) {
            continue;
        }
        match first_with_text.entry(hash) {
            Entry::Occupied(first) => found.push((row, *first.get())),
            Entry::Vacant(slot) => {
                slot.insert(row);
            }
        }
    }
    Ok(Duplicates(found))
}

/// Content hashes [`exact_duplicates_in`] holds at once (with their rows: 64 MB).
const HASHES_HELD: usize = 1 << 22;

/// [`exact_duplicates`] of `rows` rows holding at most about `held` hashes: past them, each
/// row's hash and position go to one of `rows / held` scratch files by the hash's value (equal
/// hashes to the same file), and each file is searched in turn, sorted, its duplicates one run.
/// The same duplicates, as runs (held when small, else in scratch files).
pub(crate) fn exact_duplicates_within<E, I>(
    ctx: &StageContext,
    rows: u64,
    held: usize,
    mut read: impl FnMut() -> Result<I, E>,
) -> Result<DuplicateRuns, TaxonomyError>
where
    I: Iterator<Item = Result<u64, E>>,
    TaxonomyError: From<E>,
{
    if rows <= held as u64 {
        return DuplicateRuns::of(ctx, exact_duplicates(read)?);
    }
    let parts = rows.div_ceil(held as u64);
    let scratch = |_| ctx.scratch_file().map(BufWriter::new).map_err(TaxonomyError::Scratch);
    let mut files: Vec<BufWriter<File>> = (0..parts).map(scratch).collect::<Result<_, _>>()?;
    for (row, hash) in read()?.enumerate() {
        let hash = hash?;
        let file = &mut files[(hash % parts) as usize];
        file.write_all(&hash.to_le_bytes()).and_then(|_| file.write_all(&(row as u64).to_le_bytes())).map_err(TaxonomyError::Scratch)?;
    }
    let mut runs = DuplicateRuns::default();
    for file in files {
        let mut pairs = read_pairs(file).map_err(TaxonomyError::Scratch)?;
        pairs.sort_unstable();
        let mut found = Vec::new();
        for same in pairs.chunk_by(|a, b| a.0 == b.0) {
            let first = same[0].1 as usize;
            found.extend(same[1..].iter().map(|&(_, row)| (row as usize, first)));
        }
        drop(pairs);
        runs.add(ctx, found)?;
    }
    Ok(runs)
}

/// The exact duplicates among the `rows` rows of `path` (by their content hashes), holding at
/// most [`HASHES_HELD`] hashes.
pub(crate) fn exact_duplicates_in(ctx: &StageContext, path: &Path, rows: u64) -> Result<DuplicateRuns, TaxonomyError> {
    exact_duplicates_within(ctx, rows, HASHES_HELD, || strata_core::parquet_io::content_hashes(path))
}

/// The `(hash, row)` pairs written to a scratch file, read back.
fn read_pairs(file: BufWriter<File>) -> std::io::Result<Vec<(u64, u64)>> {
    let mut file = file.into_inner().map_err(|e| e.into_error())?;
    let pairs = file.stream_position()? / 16;
    file.rewind()?;
    let (mut reader, mut pair) = (BufReader::new(file), [0u8; 16]);
    let number = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    (0..pairs)
        .map(|_| {
            reader.read_exact(&mut pair)?;
            Ok((number(&pair[..8]), number(&pair[8..])))
        })
        .collect()
}

/// The `exact` duplicates with the near ones: the search of [`NearDuplicates`] over each
/// leaf's rows (`leaves`, each in the order given), exact duplicates left out of it.
pub fn mark_duplicates(mut exact: Duplicates, vectors: ArrayView2<'_, f32>, leaves: &[&[usize]], threshold: f32) -> Duplicates {
    let rows: Vec<LeafRow> = leaves
        .iter()
        .zip(0u32..)
        .flat_map(|(members, leaf)| members.iter().filter(|&&m| exact.of(m).is_none()).map(move |&m| (m, leaf)))
        .map(|(m, leaf)| (m, leaf, vectors.row(m).to_vec()))
        .collect();
    let keys: Vec<u32> = (0..leaves.len() as u32).collect();
    let mut search = NearDuplicates::new(&keys, keys.len(), threshold);
    search.add(&rows);
    exact.extend(search.found);
    exact
}

// A row's index, leaf and vector, as the near-duplicate search takes them.
pub(crate) use strata_core::vectors::LeafRow;

/// The near-duplicate search within the leaves of one group: per leaf, in row order, a row is
/// compared with the rows kept before it, and is either a duplicate of the first it is close
/// to or kept.
pub(crate) struct NearDuplicates {
    /// Per leaf key, its place in `kept` when it is a leaf of the group.
    slot: Vec<Option<usize>>,
    /// Per leaf of the group (in the order given), its rows kept, in row order.
    pub(crate) kept: Vec<Vec<(usize, Vec<f32>)>>,
    threshold: f32,
    pub(crate) found: Vec<(usize, usize)>,
}

impl NearDuplicates {
    pub(crate) fn new(leaves: &[u32], keys: usize, threshold: f32) -> Self {
        let mut slot = vec![None; keys];
        leaves.iter().enumerate().for_each(|(i, &leaf)| slot[leaf as usize] = Some(i));
        Self { slot, kept: vec![Vec::new(); leaves.len()], threshold, found: Vec::new() }
    }

    /// The next rows, in row order; rows of other leaves are passed over. Leaves in parallel.
    pub(crate) fn add(&mut self, rows: &[LeafRow]) {
        let mut by_leaf: Vec<Vec<&LeafRow>> = vec![Vec::new(); self.kept.len()];
        for row in rows {
            if let Some(i) = self.slot[row.1 as usize] {
                by_leaf[i].push(row);
            }
        }
        let threshold = self.threshold;
        let found: Vec<(usize, usize)> = self
            .kept
            .par_iter_mut()
            .zip(by_leaf)
            .flat_map_iter(|(kept, members)| {
                let mut found = Vec::new();
                for (m, _, v) in members {
                    match kept.iter().find(|(_, k)| close(v, k, threshold)) {
                        Some(&(k, _)) => found.push((*m, k)),
                        None => kept.push((*m, v.clone())),
                    }
                }
                found
            })
            .collect();
        self.found.extend(found);
    }
}

/// Whether `row` is a near-duplicate of the kept row `kept`: their cosine (both of unit
/// length) at or above `threshold`.
pub(crate) fn close(row: &[f32], kept: &[f32], threshold: f32) -> bool {
    ArrayView1::from(row).dot(&ArrayView1::from(kept)) >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_duplicates_spilled_by_hash_are_those_found_in_memory() {
        let test_run = crate::TestRun::new();
        let ctx = test_run.ctx();
        // Hashes with repeats near and far apart, some three times.
        let hashes: Vec<u64> = (0..200u64).map(|i| (i * 7919) % 61 * 0x9E37_79B9).collect();
        let read = || Ok::<_, TaxonomyError>(hashes.iter().map(|&h| Ok(h)));
        let in_memory = exact_duplicates(read).expect("in memory");
        assert!(in_memory.count() > 100, "{}", in_memory.count());
        let expected: Vec<Option<usize>> = (0..hashes.len()).map(|row| in_memory.of(row)).collect();
        for held in [1, 3, 50, 199, 200, 1000] {
            let spilled = exact_duplicates_within(&ctx, hashes.len() as u64, held, read).expect("spilled");
            let mut cursor = spilled.cursor().expect("cursor");
            let found: Vec<Option<usize>> = (0..hashes.len()).map(|row| cursor.of(row).expect("read")).collect();
            assert_eq!((found, spilled.count()), (expected.clone(), in_memory.count()), "{held} held");
        }
    }
}
