//! What needs every chunk's vector once the tree is known, computed in passes over
//! `embeddings.parquet` that hold one batch of vectors, not the corpus's: each node's summed
//! vector, the members nearest it, and near-duplicate chunks within leaves. The results are
//! those of the same computations over every vector in memory, bit for bit: the same sums in
//! the same order, the same products.
//!
//! The near-duplicate search holds the vectors kept so far in the leaves it searches. Leaves
//! of up to `DUPLICATE_ROWS_PER_GROUP` chunks in all are searched in the pass itself; more
//! leaves are cut into groups of that size, the pass writes each group's vectors to a scratch
//! file, and each group is searched from its file in turn (a leaf larger than that is a group
//! of its own and holds its own vectors).

use crate::dedup::{LeafRow, NearDuplicates};
use crate::runs::DuplicateRuns;
use crate::TaxonomyError;
use std::path::{Path, PathBuf};
use strata_core::parquet_io::{self, for_each_vector_batch, ParquetIoError};
use strata_core::rundir::{EMBEDDINGS, WORK_CHUNKS, WORK_PASSAGES};
use strata_core::vectors::{dot, Spill, VectorRows};
use strata_core::{PassagesFile, RunDir, StageContext};

/// Chunk rows whose vectors one group of leaves may hold: about 400 MB at 384 dimensions.
const DUPLICATE_ROWS_PER_GROUP: usize = 1 << 18;
/// Vectors read back from a scratch file at a time.
const SCRATCH_BATCH: usize = 1 << 14;

/// The run's chunk ids and vectors, read in step, and its passages.
pub struct ChunkVectors {
    pub chunks: PathBuf,
    pub embeddings: PathBuf,
    pub passages: PassagesFile,
}

impl ChunkVectors {
    pub fn of(run: &RunDir) -> Result<Self, ParquetIoError> {
        let chunks = run.path(WORK_CHUNKS);
        let passages = PassagesFile::new(&run.path(WORK_PASSAGES), parquet_io::num_rows(&chunks)?);
        Ok(Self { chunks, embeddings: run.path(EMBEDDINGS), passages })
    }
}

/// Each chunk's leaf, in row order, read afresh for each pass.
pub trait ChunkLeaves {
    fn chunk_leaves(&self) -> Result<Box<dyn Iterator<Item = Result<u32, TaxonomyError>> + '_>, TaxonomyError>;
}

/// Where the chunks sit in the tree: each leaf's lineage (`lineages[leaf]`, the nodes a chunk
/// of `leaf` belongs to) and each chunk's leaf.
pub struct ChunkTree<'a> {
    pub lineages: &'a [Vec<usize>],
    pub leaves: &'a dyn ChunkLeaves,
}

/// The next `n` chunks' leaves of `leaves` into `batch` (cleared first): a pass's batch of rows
/// of `chunks`.
pub fn next_leaves(
    leaves: &mut dyn Iterator<Item = Result<u32, TaxonomyError>>,
    n: usize,
    batch: &mut Vec<u32>,
    chunks: &Path,
) -> Result<(), TaxonomyError> {
    batch.clear();
    for leaf in leaves.take(n) {
        batch.push(leaf?);
    }
    match batch.len() == n {
        true => Ok(()),
        false => Err(ParquetIoError::OutOfStep { path: chunks.to_path_buf() }.into()),
    }
}

/// Per node, the sum of its member chunks' vectors; the chunks that near- or exactly duplicate
/// another (`dedup::mark_duplicates` within each leaf, as `dedup::NearDuplicates` searches).
pub struct Sums {
    pub sums: Vec<Vec<f32>>,
    pub duplicate_of: DuplicateRuns,
}

/// Each node's vector sum and the chunks' duplicates: the `exact` ones and those near them.
/// `tree` is where the chunks sit; `leaf_sizes` the leaves with their chunk counts.
pub fn sums_and_duplicates(
    ctx: &StageContext,
    files: &ChunkVectors,
    tree: &ChunkTree,
    leaf_sizes: &[(u32, usize)],
    exact: DuplicateRuns,
    threshold: f32,
) -> Result<Sums, TaxonomyError> {
    let mut search = DuplicateSearch::new(ctx, leaf_sizes, tree.lineages.len(), threshold)?;
    let mut sums: Vec<Vec<f32>> = Vec::new();
    let (mut leaves, mut batch) = (tree.leaves.chunk_leaves()?, Vec::new());
    let mut exact_of = exact.cursor()?;
    for_each_vector_batch(&files.chunks, &files.embeddings, |rows| -> Result<(), TaxonomyError> {
        next_leaves(&mut leaves, rows.range().len(), &mut batch, &files.chunks)?;
        add_to_sums(&mut sums, rows, &batch, tree.lineages);
        for (r, &leaf) in rows.range().zip(&batch) {
            if exact_of.of(r)?.is_none() {
                search.add(r, leaf, rows.row(r))?;
            }
        }
        Ok(())
    })?;
    drop(exact_of);
    let mut duplicate_of = exact;
    search.finish(ctx, &mut duplicate_of)?;
    Ok(Sums { sums, duplicate_of })
}

/// The rows added to the sums of their nodes: `leaves` holds each row's leaf.
fn add_to_sums(sums: &mut Vec<Vec<f32>>, rows: &VectorRows, leaves: &[u32], lineages: &[Vec<usize>]) {
    if sums.is_empty() {
        *sums = vec![vec![0f32; rows.dim()]; lineages.len()];
    }
    for (r, &leaf) in rows.range().zip(leaves) {
        for &node in &lineages[leaf as usize] {
            sums[node].iter_mut().zip(rows.row(r)).for_each(|(a, b)| *a += b);
        }
    }
}

/// Near-duplicates within leaves (`dedup::NearDuplicates`, as `dedup::mark_duplicates` uses it), of rows added in row
/// order with their leaf (any key below the `keys` given), none an exact duplicate. Leaves of up
/// to `DUPLICATE_ROWS_PER_GROUP` rows in all are searched as the rows come; more are cut into
/// groups of that size, written to a scratch file each and searched from it in turn.
pub struct DuplicateSearch {
    /// Per leaf key, its group.
    group_of: Vec<usize>,
    groups: Vec<Vec<u32>>,
    keys: usize,
    threshold: f32,
    /// One group: the search and the rows not yet searched.
    now: Option<(NearDuplicates, Vec<LeafRow>)>,
    spills: Vec<Spill>,
}

impl DuplicateSearch {
    /// `leaf_sizes`: each leaf key with its (estimated) rows.
    pub fn new(ctx: &StageContext, leaf_sizes: &[(u32, usize)], keys: usize, threshold: f32) -> Result<Self, TaxonomyError> {
        let groups = leaf_groups(leaf_sizes, DUPLICATE_ROWS_PER_GROUP);
        let mut group_of = vec![0; keys];
        groups.iter().enumerate().for_each(|(g, leaves)| leaves.iter().for_each(|&leaf| group_of[leaf as usize] = g));
        let (now, spills) = match groups.len() {
            1 => (Some((NearDuplicates::new(&groups[0], keys, threshold), Vec::new())), Vec::new()),
            _ => (None, groups.iter().map(|_| spill(ctx)).collect::<Result<_, _>>()?),
        };
        Ok(Self { group_of, groups, keys, threshold, now, spills })
    }

    pub fn add(&mut self, row: usize, leaf: u32, vector: &[f32]) -> Result<(), TaxonomyError> {
        match &mut self.now {
            Some((search, pending)) => {
                pending.push((row, leaf, vector.to_vec()));
                if pending.len() == SCRATCH_BATCH {
                    search.add(pending);
                    pending.clear();
                }
                Ok(())
            }
            None => self.spills[self.group_of[leaf as usize]].write(row, leaf, 0, vector).map_err(TaxonomyError::Scratch),
        }
    }

    /// Each near-duplicate row with the kept row it duplicates, added to `into` a group at a
    /// time.
    pub fn finish(self, ctx: &StageContext, into: &mut DuplicateRuns) -> Result<(), TaxonomyError> {
        if let Some((mut search, pending)) = self.now {
            search.add(&pending);
            return into.add(ctx, search.found);
        }
        for (leaves, spill) in self.groups.iter().zip(self.spills) {
            let mut search = NearDuplicates::new(leaves, self.keys, self.threshold);
            spill
                .read_back(SCRATCH_BATCH, |batch| -> std::io::Result<()> {
                    search.add(&batch.into_iter().map(|s| (s.row, s.leaf, s.vector)).collect::<Vec<LeafRow>>());
                    Ok(())
                })
                .map_err(TaxonomyError::Scratch)?;
            into.add(ctx, search.found)?;
        }
        Ok(())
    }
}

/// The leaves in groups of at most `bound` rows (a larger leaf alone); one group at least.
fn leaf_groups(leaf_sizes: &[(u32, usize)], bound: usize) -> Vec<Vec<u32>> {
    let mut groups: Vec<(Vec<u32>, usize)> = vec![(Vec::new(), 0)];
    for &(leaf, size) in leaf_sizes {
        let last = groups.last_mut().expect("one group");
        if !last.0.is_empty() && last.1 + size > bound {
            groups.push((vec![leaf], size));
        } else {
            last.0.push(leaf);
            last.1 += size;
        }
    }
    groups.into_iter().map(|(leaves, _)| leaves).collect()
}

/// A spill to a scratch file of the stage's.
fn spill(ctx: &StageContext) -> Result<Spill, TaxonomyError> {
    Ok(Spill::new(ctx.scratch_file().map_err(TaxonomyError::Scratch)?))
}

/// Per node, its `n` member chunks nearest (cosine) its summed vector, nearest first (the lower
/// row first on a tie): one more pass, holding `n` rows a node.
pub fn nearest(files: &ChunkVectors, tree: &ChunkTree, sums: &[Vec<f32>], n: usize) -> Result<Vec<Vec<usize>>, TaxonomyError> {
    let mut best: Vec<Vec<(f32, usize)>> = vec![Vec::new(); sums.len()];
    let (mut leaves, mut batch) = (tree.leaves.chunk_leaves()?, Vec::new());
    for_each_vector_batch(&files.chunks, &files.embeddings, |rows| -> Result<(), TaxonomyError> {
        next_leaves(&mut leaves, rows.range().len(), &mut batch, &files.chunks)?;
        for (r, &leaf) in rows.range().zip(&batch) {
            for &node in &tree.lineages[leaf as usize] {
                let score = dot(rows.row(r), &sums[node]);
                let top = &mut best[node];
                // Rows come in order, so a tie ranks below the rows already held.
                let at = top.iter().position(|(s, _)| s.total_cmp(&score).is_lt()).unwrap_or(top.len());
                if at < n {
                    top.insert(at, (score, r));
                    top.truncate(n);
                }
            }
        }
        Ok(())
    })?;
    Ok(best.into_iter().map(|top| top.into_iter().map(|(_, r)| r).collect()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::parquet_io::write_rows;
    use strata_core::records::EmbeddingRecord;

    /// Each chunk's leaf, listed.
    struct Leaves(Vec<u32>);

    impl ChunkLeaves for Leaves {
        fn chunk_leaves(&self) -> Result<Box<dyn Iterator<Item = Result<u32, TaxonomyError>> + '_>, TaxonomyError> {
            Ok(Box::new(self.0.iter().map(|&leaf| Ok(leaf))))
        }
    }

    #[test]
    fn the_passes_find_what_the_whole_matrix_gives_in_one_group_or_spilled_in_several() {
        let test_run = crate::TestRun::new();
        let dir = &test_run.dir;
        let path = dir.path().join("embeddings.parquet");
        // Two leaves (nodes 1 and 2) under the root; rows 0 and 2 nearly the same; 3 and 5
        // the same text.
        let vectors = [[1.0, 0.0], [0.0, 1.0], [0.999, 0.0447], [0.6, 0.8], [0.998, 0.0632], [0.6, 0.8]];
        let rows: Vec<EmbeddingRecord> =
            vectors.iter().enumerate().map(|(i, v)| EmbeddingRecord { chunk_id: format!("c{i}"), embedding: v.to_vec() }).collect();
        write_rows(&path, &EmbeddingRecord::fields(2), &rows, &[]).expect("write");
        let files = ChunkVectors { chunks: path.clone(), embeddings: path.clone(), passages: PassagesFile::new(&path, 6) };
        let (lineages, leaf_of) = (vec![vec![0], vec![0, 1], vec![0, 2]], [1, 2, 1, 2, 2, 2]);
        let exact = crate::exact_duplicates(|| Ok::<_, ()>([1, 2, 3, 4, 5, 4].into_iter().map(Ok))).expect("hashes");
        let ctx = test_run.ctx();
        let leaves = Leaves(leaf_of.to_vec());
        let tree = ChunkTree { lineages: &lineages, leaves: &leaves };
        let exact = DuplicateRuns::of(&ctx, exact).expect("runs");
        let found = sums_and_duplicates(&ctx, &files, &tree, &[(1, 2), (2, 4)], exact, 0.99).expect("pass");
        let mut cursor = found.duplicate_of.cursor().expect("cursor");
        let duplicates: Vec<Option<usize>> = (0..6).map(|row| cursor.of(row).expect("read")).collect();
        assert_eq!(duplicates, [None, None, Some(0), None, None, Some(3)]);
        let leaf1: Vec<f32> = (0..2).map(|d| vectors[0][d] + vectors[2][d]).collect();
        assert_eq!(found.sums[1], leaf1);
        let nearest = nearest(&files, &tree, &found.sums, 2).expect("pass");
        assert_eq!(nearest[2], [3, 5], "rows 3 and 5 tie as nearest; the lower comes first");
        assert_eq!(nearest[1].len(), 2);

        // Each leaf its own group: written out and searched from the scratch files, the same.
        let mut search = DuplicateSearch::new(&ctx, &[(1, 2), (2, 4)], 3, 0.99).expect("search");
        search.now = None;
        search.groups = vec![vec![1], vec![2]];
        search.group_of = vec![0, 0, 1];
        search.spills = (0..2).map(|_| spill(&ctx).expect("scratch")).collect();
        for (r, v) in vectors.iter().enumerate().filter(|&(r, _)| r != 5) {
            search.add(r, leaf_of[r], v).expect("write");
        }
        let mut found = DuplicateRuns::default();
        search.finish(&ctx, &mut found).expect("read");
        let mut cursor = found.cursor().expect("cursor");
        assert_eq!((0..6).map(|row| cursor.of(row).expect("read")).collect::<Vec<_>>(), [None, None, Some(0), None, None, None]);
    }

    #[test]
    fn leaves_are_grouped_under_the_bound_and_a_large_leaf_alone() {
        assert_eq!(leaf_groups(&[], 100), vec![Vec::<u32>::new()]);
        assert_eq!(leaf_groups(&[(1, 10), (2, 10)], 100), vec![vec![1, 2]]);
        assert_eq!(leaf_groups(&[(1, 10), (2, 100), (3, 1)], 100), vec![vec![1], vec![2], vec![3]]);
    }
}
