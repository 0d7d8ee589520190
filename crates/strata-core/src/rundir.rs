//! The run directory: every file name of the contract lives here and nowhere else.

use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
pub const CHUNKS: &str = "chunks.parquet";
pub const PASSAGES: &str = "passages.parquet";
pub const EMBEDDINGS: &str = "embeddings.parquet";
pub const TAXONOMY: &str = "taxonomy.parquet";
pub const TAXONOMY_JSON: &str = "taxonomy.json";
pub const TRAIN_DIR: &str = "train";
pub const SCPT: &str = "train/scpt.parquet";
pub const SSFT: &str = "train/ssft.parquet";
pub const CPT: &str = "train/cpt.parquet";
pub const RANDOM_SCPT: &str = "train/random_scpt.parquet";
pub const RANDOM_CPT: &str = "train/random_cpt.parquet";
pub const SSFT_QA: &str = "train/ssft_qa.parquet";
pub const DATASET_INFO: &str = "train/dataset_info.json";
pub const INDEX_DIR: &str = "index";
/// The chunk vectors and node centroids for dense search, beside the index.
pub const DENSE_DIR: &str = "dense";
pub const COST: &str = "cost.json";
pub const REPORT: &str = "report.html";
pub const EVAL: &str = "eval.json";

/// Files stages hand to each other that are not part of the published contract.
pub const WORK_DIR: &str = "work";
pub const WORK_CHUNKS: &str = "work/chunks.parquet";
pub const WORK_DOCUMENTS: &str = "work/documents.parquet";
pub const WORK_PASSAGES: &str = "work/passages.parquet";
pub const WORK_PASSAGE_ASSIGNMENTS: &str = "work/passage_assignments.parquet";
pub const WORK_ASSIGNMENTS: &str = "work/assignments.parquet";
pub const WORK_SELECTION: &str = "work/selection.parquet";
/// The tree fitted on a sample of the passages (the fit stage), for placing every passage.
pub const WORK_FIT: &str = "work/taxonomy_fit.json";
/// A shard's passages placed in the fitted tree, and its chunks' term and heading counts per
/// fitted leaf (`strata taxonomy --shard I/N`).
pub const WORK_PLACEMENTS: &str = "work/placements.parquet";
pub const WORK_TERMS: &str = "work/terms.parquet";
pub const WORK_LEAF_TERMS: &str = "work/leaf_terms.parquet";
pub const WORK_HEADINGS: &str = "work/headings.parquet";
/// In a sharded run, the tree the shards' placements make with its keywords (the keywords
/// stage), and a shard's counts of the label phrases that hold them (`strata keywords --shard I/N`).
pub const WORK_KEYWORDS: &str = "work/keywords.json";
pub const WORK_PHRASES: &str = "work/phrases.parquet";
/// The subtrees the selection chooses in, with its budget and cost floor (the subtrees stage),
/// and their passages' vectors, grouped by subtree.
pub const WORK_SUBTREES: &str = "work/subtrees.json";
pub const WORK_SUBTREE_PASSAGES: &str = "work/subtree_passages.parquet";
/// A shard's choice in its subtrees (`strata select --shard I/N`).
pub const WORK_PICKS: &str = "work/picks.parquet";

/// The shards' run directories, one `part-IIIII-of-NNNNN` folder each (`RunDir::part`).
pub const SHARDS_DIR: &str = "shards";

/// Where a stage's outputs are assembled before they are renamed into place.
pub const TMP_DIR: &str = ".tmp";

/// A run directory such as `out/medicine/`.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute or root-relative path of a run file, e.g. `run.path(CHUNKS)`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The run directory of one shard of this run: its map stages write there, under the same
    /// file names, with a manifest of their own (written last, so it marks the part complete).
    pub fn part(&self, shard: crate::Shard) -> RunDir {
        RunDir::new(self.root.join(SHARDS_DIR).join(shard.part_name()))
    }

    /// The plan the shards of `count` share (file hashes, where each starts reading).
    pub fn shard_plan(&self, count: u32) -> PathBuf {
        self.root.join(SHARDS_DIR).join(format!("plan-of-{count:05}.json"))
    }
}
