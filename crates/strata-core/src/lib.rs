//! strata-core: what every stage shares and nothing more.
//!
//! It owns the run directory layout (every file name), the Arrow schemas of the files the
//! stages exchange, the manifest, the stage trait with its runner (fingerprints, skipping,
//! write-to-temporary-then-rename), the progress trait, the token counter, and the vector
//! products and seeded sampling the stages share.
//! It does not chunk, embed, cluster or render anything: those are the stage crates'.

pub mod hash;
pub mod ledger;
pub mod manifest;
pub mod parquet_io;
pub mod progress;
pub mod records;
pub mod rundir;
pub mod stage;
pub mod tokens;
pub mod vectors;

pub use progress::{NoProgress, Progress};
pub use rundir::RunDir;
pub use stage::{Stage, StageContext, StageError, StageStats};

/// Version of the run directory contract (file names, columns). Bump on any change.
pub const SCHEMA_VERSION: u32 = 1;
/// Version of the tool, recorded in the manifest.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
