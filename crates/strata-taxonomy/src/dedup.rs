//! Duplicates: exact (same text) anywhere in the corpus, near (cosine at or above a
//! threshold) within a leaf, where near-duplicates land in practice; comparing within leaves
//! keeps the work far below all pairs.

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;
use std::collections::{hash_map::Entry, HashMap, HashSet};

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

    /// The rows some row duplicates.
    pub fn kept(&self) -> HashSet<usize> {
        self.0.iter().map(|&(_, kept)| kept).collect()
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
    kept: Vec<Vec<(usize, Vec<f32>)>>,
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
                    let row = ArrayView1::from(v.as_slice());
                    match kept.iter().find(|(_, k)| row.dot(&ArrayView1::from(k.as_slice())) >= threshold) {
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
