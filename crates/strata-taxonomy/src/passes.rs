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
//! of its own, searched that many rows at a time against the rows it kept before, read back
//! from another scratch file).

use crate::dedup::{self, LeafRow, NearDuplicates};
use crate::runs::DuplicateRuns;
use crate::TaxonomyError;
use rayon::prelude::*;
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

/// Near-duplicates within leaves (`dedup::NearDuplicates`, as `dedup::mark_duplicates` uses
/// it), of rows added in row order with their leaf (any key below the `keys` given), none an
/// exact duplicate. Leaves of up to `DUPLICATE_ROWS_PER_GROUP` rows in all are searched as the
/// rows come; more are cut into groups of that size, written to a scratch file each and
/// searched from it in turn; a leaf larger than that is a group of its own, searched a block of
/// that many rows at a time (`search_in_blocks`).
pub struct DuplicateSearch {
    /// Per leaf key, its group.
    group_of: Vec<usize>,
    groups: Vec<Vec<u32>>,
    keys: usize,
    threshold: f32,
    /// The most rows a group's search holds.
    bound: usize,
    /// One group: the search and the rows not yet searched.
    now: Option<(NearDuplicates, Vec<LeafRow>)>,
    spills: Vec<Spill>,
}

impl DuplicateSearch {
    /// `leaf_sizes`: each leaf key with its (estimated) rows.
    pub fn new(ctx: &StageContext, leaf_sizes: &[(u32, usize)], keys: usize, threshold: f32) -> Result<Self, TaxonomyError> {
        Self::bounded(ctx, leaf_sizes, keys, threshold, DUPLICATE_ROWS_PER_GROUP)
    }

    fn bounded(ctx: &StageContext, leaf_sizes: &[(u32, usize)], keys: usize, threshold: f32, bound: usize) -> Result<Self, TaxonomyError> {
        let groups = leaf_groups(leaf_sizes, bound);
        let mut group_of = vec![0; keys];
        groups.iter().enumerate().for_each(|(g, leaves)| leaves.iter().for_each(|&leaf| group_of[leaf as usize] = g));
        let in_pass = leaf_sizes.iter().map(|&(_, size)| size).sum::<usize>() <= bound;
        let (now, spills) = match in_pass {
            true => (Some((NearDuplicates::new(&groups.concat(), keys, threshold), Vec::new())), Vec::new()),
            false => (None, groups.iter().map(|_| spill(ctx)).collect::<Result<_, _>>()?),
        };
        Ok(Self { group_of, groups, keys, threshold, bound, now, spills })
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

    /// Each near-duplicate row with the kept row it duplicates, added to `into` a group (or a
    /// block of a large one) at a time.
    pub fn finish(self, ctx: &StageContext, into: &mut DuplicateRuns) -> Result<(), TaxonomyError> {
        if let Some((mut search, pending)) = self.now {
            search.add(&pending);
            return into.add(ctx, search.found);
        }
        for (leaves, spill) in self.groups.iter().zip(self.spills) {
            if spill.rows() > self.bound {
                search_in_blocks(ctx, leaves, self.keys, self.threshold, spill, self.bound, into)?;
                continue;
            }
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

/// The near-duplicate search of the group `leaves` (of `keys` leaf keys), whose rows (`group`,
/// in row order) are more than `block`, finding what `NearDuplicates` finds over all its rows
/// while holding a block of them: the rows are taken `block` at a time; each is first compared
/// with the rows of its leaf kept in earlier blocks, read back in row order from a scratch file
/// (so the first close one is the one the search in memory finds), and the rows close to none
/// are searched among themselves; the block's kept rows then go to the file. The same products
/// as that search, once per block more reading of the kept rows.
fn search_in_blocks(
    ctx: &StageContext,
    leaves: &[u32],
    keys: usize,
    threshold: f32,
    group: Spill,
    block: usize,
    into: &mut DuplicateRuns,
) -> Result<(), TaxonomyError> {
    let mut kept = spill(ctx)?;
    let blocks = group.read_back(block, |rows| -> Result<(), BlockError> {
        // Per row, the earliest row kept in an earlier block it is close to.
        let mut earlier: Vec<Option<usize>> = vec![None; rows.len()];
        kept.read_written(SCRATCH_BATCH, |batch| -> std::io::Result<()> {
            rows.par_iter().zip(earlier.par_iter_mut()).filter(|(_, e)| e.is_none()).for_each(|(row, e)| {
                *e = batch.iter().find(|k| k.leaf == row.leaf && dedup::close(&row.vector, &k.vector, threshold)).map(|k| k.row);
            });
            Ok(())
        })?;
        let mut search = NearDuplicates::new(leaves, keys, threshold);
        let (mut found, mut rest) = (Vec::new(), Vec::with_capacity(SCRATCH_BATCH));
        for (row, earlier) in rows.into_iter().zip(earlier) {
            match earlier {
                Some(target) => found.push((row.row, target)),
                None => rest.push((row.row, row.leaf, row.vector)),
            }
            if rest.len() == SCRATCH_BATCH {
                search.add(&rest);
                rest.clear();
            }
        }
        search.add(&rest);
        found.append(&mut search.found);
        for (leaf_kept, &leaf) in search.kept.iter().zip(leaves) {
            leaf_kept.iter().try_for_each(|(row, vector)| kept.write(*row, leaf, 0, vector))?;
        }
        into.add(ctx, found).map_err(BlockError)
    });
    blocks.map_err(|BlockError(e)| e)
}

/// What stops the search of a block: a scratch file's error or the search's.
struct BlockError(TaxonomyError);

impl From<std::io::Error> for BlockError {
    fn from(e: std::io::Error) -> Self {
        Self(TaxonomyError::Scratch(e))
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
        let mut search = DuplicateSearch::bounded(&ctx, &[(1, 2), (2, 4)], 3, 0.99, 4).expect("search");
        assert_eq!(search.groups, [vec![1], vec![2]]);
        for (r, v) in vectors.iter().enumerate().filter(|&(r, _)| r != 5) {
            search.add(r, leaf_of[r], v).expect("write");
        }
        let mut found = DuplicateRuns::default();
        search.finish(&ctx, &mut found).expect("read");
        let mut cursor = found.cursor().expect("cursor");
        assert_eq!((0..6).map(|row| cursor.of(row).expect("read")).collect::<Vec<_>>(), [None, None, Some(0), None, None, None]);
    }

    #[test]
    fn a_leaf_larger_than_a_group_searched_in_blocks_finds_what_the_search_in_memory_finds() {
        use rand_xoshiro::rand_core::{RngCore, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(7);
        let mut unit = |base: Option<&Vec<f32>>, noise: f32| {
            let mut v: Vec<f32> =
                (0..8).map(|d| base.map_or(0.0, |b| b[d]) + noise * ((rng.next_u32() % 2001) as f32 / 1000.0 - 1.0)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        };
        // 60 rows in 3 leaves: a third new, the rest near an earlier row of the same leaf (some
        // close enough, some not).
        let mut rows: Vec<LeafRow> = Vec::new();
        for r in 0..60 {
            let leaf = (r % 3) as u32;
            let earlier: Vec<&LeafRow> = rows.iter().filter(|row| row.1 == leaf).collect();
            let vector = match (r % 3 == 0 || earlier.is_empty(), earlier.get(r * 7 % earlier.len().max(1))) {
                (false, Some(near)) => unit(Some(&near.2), 0.05 + (r % 4) as f32 * 0.1),
                _ => unit(None, 1.0),
            };
            rows.push((r, leaf, vector));
        }
        let threshold = 0.95;
        let mut whole = NearDuplicates::new(&[0, 1, 2], 3, threshold);
        whole.add(&rows);
        let mut expected = whole.found;
        expected.sort_unstable();
        assert!(expected.len() > 10 && expected.len() < 50, "{} duplicates", expected.len());

        let test_run = crate::TestRun::new();
        let ctx = test_run.ctx();
        // Exact sizes (each leaf a group, searched in blocks), and sizes too small (two leaves
        // in one group larger than the bound).
        for (sizes, bound) in
            [(vec![(0, 20), (1, 20), (2, 20)], 7), (vec![(0, 1), (1, 1), (2, 1)], 2), (vec![(0, 20), (1, 20), (2, 20)], 1)]
        {
            let mut search = DuplicateSearch::bounded(&ctx, &sizes, 3, threshold, bound).expect("search");
            rows.iter().try_for_each(|(r, leaf, v)| search.add(*r, *leaf, v)).expect("add");
            let mut found = DuplicateRuns::default();
            search.finish(&ctx, &mut found).expect("finish");
            let mut cursor = found.cursor().expect("cursor");
            let got: Vec<(usize, usize)> = (0..60).filter_map(|r| cursor.of(r).expect("read").map(|t| (r, t))).collect();
            assert_eq!(got, expected, "bound {bound}");
        }
    }

    #[test]
    fn leaves_are_grouped_under_the_bound_and_a_large_leaf_alone() {
        assert_eq!(leaf_groups(&[], 100), vec![Vec::<u32>::new()]);
        assert_eq!(leaf_groups(&[(1, 10), (2, 10)], 100), vec![vec![1, 2]]);
        assert_eq!(leaf_groups(&[(1, 10), (2, 100), (3, 1)], 100), vec![vec![1], vec![2], vec![3]]);
    }
}
