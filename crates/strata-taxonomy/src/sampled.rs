//! The tree for more passages than `sample_size`: fitted on a seeded sample of the passages
//! (the fit stage, [`fit`]), then every passage placed by descending the fitted tree (the
//! nearest centroid at each split) as the chunks' vectors stream by, with the passages'
//! near-duplicates searched in the same pass ([`place`]). In a sharded run the shards may
//! have descended already (`parts`): the pass then only searches the duplicates. It holds the
//! sample's vectors, one document's passages and the duplicate search's bounded buffers, never
//! every passage's vector; up to `sample_size` passages the taxonomy stage clusters all of
//! them in memory instead (`TaxonomyStage::cluster_passages`).

use crate::cluster::{build_tree_on_sample, Cluster};
use crate::dedup::exact_duplicates_in;
use crate::passes::{ChunkVectors, DuplicateSearch};
use crate::placed::{PlacedLeaves, PlacedWriter};
use crate::{Flat, PassageTree, TaxonomyConfig, TaxonomyError};
use ndarray::Array2;
use std::collections::HashMap;
use strata_core::vectors::{blend, sample_indices};
use strata_core::StageContext;

/// Mixed into the run's seed for the sample, so that it is not any k-means draw.
const SAMPLE_SEED: u64 = 0x5A3B_1E5F_0C2D_7781;

/// The tree fitted on a seeded sample of `sample_size` passages (their topic vectors), its
/// node sizes judged scaled to every passage.
pub(crate) fn fit(files: &ChunkVectors, config: &TaxonomyConfig, seed: u64) -> Result<Cluster, TaxonomyError> {
    let n = files.passages.count()? as usize;
    let sample = sample_indices(n, config.sample_size, seed ^ SAMPLE_SEED);
    // The sample is ascending, as the passages come.
    let mut next_in_sample = sample.iter().peekable();
    let (mut units, mut dim) = (Vec::new(), 0);
    each_passage(files, config.document_weight, |p, _, topic| {
        if next_in_sample.next_if_eq(&&p).is_some() {
            dim = topic.len();
            units.extend_from_slice(topic);
        }
        Ok(())
    })?;
    tracing::info!(passages = n, sample = sample.len(), "tree fitted on a sample; every passage is placed by the taxonomy");
    Ok(build_tree_on_sample(&Array2::from_shape_vec((sample.len(), dim), units)?, config, seed, n))
}

/// Every passage placed in `fitted` (or, given `placed`, each passage's leaf as the shards
/// found it by the same descent), with per passage the passage it duplicates.
pub(crate) fn place(
    ctx: &StageContext,
    files: &ChunkVectors,
    config: &TaxonomyConfig,
    fitted: &Cluster,
    placed: Option<PlacedLeaves>,
) -> Result<PassageTree, TaxonomyError> {
    let n = files.passages.count()? as usize;
    let sample = fitted.members.len();
    let scale = n as f64 / sample.max(1) as f64;
    let leaf_sizes: Vec<(u32, usize)> =
        fitted.leaves().iter().enumerate().map(|(i, leaf)| (i as u32, (leaf.members.len() as f64 * scale).round() as usize)).collect();
    let exact = exact_duplicates_in(ctx, files.passages.path(), n as u64)?;
    let mut search = DuplicateSearch::new(ctx, &leaf_sizes, leaf_sizes.len(), config.near_duplicate_threshold)?;
    let mut exact_of = exact.cursor()?;
    let mut visit = |p: usize, own: &[f32], leaf: u32| match exact_of.of(p)? {
        None => search.add(p, leaf, own),
        Some(_) => Ok(()),
    };
    let placed = match placed {
        Some(placed) => {
            let mut leaves = placed.read();
            let changed = || TaxonomyError::Changed { path: files.passages.path().to_path_buf() };
            files
                .passages
                .for_each_vector(&files.chunks, &files.embeddings, |p, own| visit(p, own, leaves.next().ok_or_else(changed)??))?;
            drop(leaves);
            placed
        }
        None => {
            let mut leaves = PlacedWriter::new(ctx)?;
            each_placed(files, config.document_weight, fitted, |p, own, leaf| {
                leaves.push(leaf)?;
                visit(p, own, leaf)
            })?;
            leaves.finish()?
        }
    };
    drop(exact_of);
    let mut duplicate_of = exact;
    search.finish(ctx, &mut duplicate_of)?;
    let flat = Flat::of(fitted, placed, files.passages.clone())?;
    Ok(PassageTree { flat, duplicate_of, fitted_on_sample: Some(sample as u64) })
}

/// Every passage, in order, with its own vector and the leaf its topic vector descends to in
/// `fitted` (by the leaf's position among `fitted.leaves()`).
pub(crate) fn each_placed(
    files: &ChunkVectors,
    weight: f32,
    fitted: &Cluster,
    mut f: impl FnMut(usize, &[f32], u32) -> Result<(), TaxonomyError>,
) -> Result<(), TaxonomyError> {
    let leaf_of_path: HashMap<Vec<u8>, u32> = fitted.leaf_paths().into_iter().zip(0..).collect();
    each_passage(files, weight, |p, own, topic| f(p, own, leaf_of_path[&fitted.descend(topic)]))
}

/// Every passage, in order, with its own vector (its chunks' normalised mean) and its topic
/// vector (its own drawn towards its document's by `weight`, as `Matrix::blend` draws it), as
/// the chunks' vectors stream by.
fn each_passage(
    files: &ChunkVectors,
    weight: f32,
    mut f: impl FnMut(usize, &[f32], &[f32]) -> Result<(), TaxonomyError>,
) -> Result<(), TaxonomyError> {
    files.passages.for_each_with_document(&files.chunks, &files.embeddings, |p, own, document| match weight > 0.0 {
        true => f(p, own, &blend(own, document, weight)),
        false => f(p, own, own),
    })
}
