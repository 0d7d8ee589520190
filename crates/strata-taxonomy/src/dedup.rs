//! Duplicates: exact (same text) anywhere in the corpus, near (cosine at or above a
//! threshold) within a leaf, where near-duplicates land in practice; comparing within leaves
//! keeps the work far below all pairs.

use ndarray::ArrayView2;
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
/// that is not itself a duplicate, so every group points at one kept chunk.
pub fn mark_duplicates<H: Eq + std::hash::Hash>(
    content_hashes: &[H],
    vectors: ArrayView2<'_, f32>,
    leaves: &[&[usize]],
    threshold: f32,
) -> Vec<Option<usize>> {
    let mut duplicate_of = exact_duplicates(content_hashes);
    let near: Vec<(usize, usize)> = leaves
        .par_iter()
        .flat_map_iter(|members| {
            let mut kept: Vec<usize> = Vec::new();
            let mut found = Vec::new();
            for &m in members.iter() {
                if duplicate_of[m].is_some() {
                    continue;
                }
                let row = vectors.row(m);
                let hit = kept.iter().copied().find(|&k| row.dot(&vectors.row(k)) >= threshold);
                match hit {
                    Some(k) => found.push((m, k)),
                    None => kept.push(m),
                }
            }
            found
        })
        .collect();
    for (m, k) in near {
        duplicate_of[m] = Some(k);
    }
    duplicate_of
}
