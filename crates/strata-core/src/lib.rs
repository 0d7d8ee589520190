//! strata-core: what every stage shares and nothing more.
//!
//! It owns the run directory layout (every file name, the shards' folders), the Arrow schemas of the files the
//! stages exchange, the manifest, the stage trait with its runner (fingerprints, skipping,
//! write-to-temporary-then-rename) with the stages' names and typed summaries, the progress
//! trait, the token counter, the taxonomy tree every reader shares, the vector matrix, what
//! makes a label good, the run's embedder and the optional LLM as traits, and the products, seeded sampling and
//! eligibility rule the stages share.
//! It does not chunk, embed, cluster or render anything: those are the stage crates'.

pub mod embedder;
pub mod hash;
pub mod labels;
pub mod ledger;
pub mod llm;
pub mod manifest;
pub mod parquet_io;
pub mod passages;
pub mod progress;
pub mod questions;
pub mod records;
pub mod rundir;
pub mod shard;
pub mod stage;
pub mod summary;
pub mod tokens;
pub mod tree;
pub mod vectors;

pub use embedder::{EmbedFailure, TextEmbedder};
pub use passages::{PassageIndex, PassagesFile};
pub use progress::{NoProgress, Progress};
pub use rundir::RunDir;
pub use shard::Shard;
pub use stage::{Stage, StageContext, StageError, StageStats};
pub use summary::{StageName, StageSummary};
pub use tree::{Shape, TaxonomyTree, TreeError};
pub use vectors::Matrix;

/// Version of the run directory contract (file names, columns). Bump on any change.
pub const SCHEMA_VERSION: u32 = 2;
/// Version of the tool, recorded in the manifest.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether selection may take a passage, the one rule that select, eval and the tests share:
/// not a near-duplicate, and at least `min_tokens` target tokens (shorter passages are crumbs,
/// a stray line or a list item, that teach little and would win on gain per token).
pub fn eligible(n_tokens: u32, is_duplicate: bool, min_tokens: u32) -> bool {
    !is_duplicate && n_tokens >= min_tokens
}
