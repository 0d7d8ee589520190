//! Duplicates: exact (same text) anywhere in the corpus, near (cosine at or above a
//! threshold) within a leaf, where near-duplicates land in practice; comparing within leaves
//! keeps the work far below all pairs.

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;
use std::collections::HashMap;

/// For each item, the first with the same content hash, if that is an earlier one.
pub fn exact_duplicates<H: Eq + std::hash::Hash>(content_hashes: &[H]) -> Vec<Option<usize>> {
    let mut duplicate_of = vec![None; content_hashes.len()];
    let mut first_with_text: HashMap<&H, usize> = HashMap::new();
    for (i, hash) in content_hashes.iter().enumerate() {
        match first_with_text.get(hash) {
            Some(&first) => duplicate_of[i] = Some(first),
            None => {
                first_with_text.insert(hash, i);
            }
        }
    }
    duplicate_of
}

/// For each chunk, the earlier chunk it duplicates, if any. The earlier chunk is always one
/// that is not itself a duplicate, so every group points at one kept chunk: the search of
/// [`NearDuplicates`] over each leaf's rows, in the order given.
pub fn mark_duplicates<H: Eq + std::hash::Hash>(
    content_hashes: &[H],
    vectors: ArrayView2<'_, f32>,
    leaves: &[&[usize]],
    threshold: f32,
) -> Vec<Option<usize>> {
    let mut duplicate_of = exact_duplicates(content_hashes);
    let rows: Vec<LeafRow> = leaves
        .iter()
        .zip(0u32..)
        .flat_map(|(members, leaf)| members.iter().filter(|&&m| duplicate_of[m].is_none()).map(move |&m| (m, leaf)))
        .map(|(m, leaf)| (m, leaf, vectors.row(m).to_vec()))
        .collect();
    let keys: Vec<u32> = (0..leaves.len() as u32).collect();
    let mut search = NearDuplicates::new(&keys, keys.len(), threshold);
    search.add(&rows);
    for (m, k) in search.found {
        duplicate_of[m] = Some(k);
    }
    duplicate_of
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
