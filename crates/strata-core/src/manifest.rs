//! `manifest.json`: what a run was made from and what each stage produced.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("failed to read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid manifest (delete it to start the run afresh)")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One input file of the corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What one stage did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Hash of everything the stage's output depends on; equal fingerprints allow a skip.
    pub fingerprint: String,
    pub seconds: f64,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Output file (run-relative) -> sha256 of its content.
    pub outputs: BTreeMap<String, String>,
    /// Stage-specific figures, e.g. `budget_tokens` for `select`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub tool_version: String,
    /// The resolved configuration (recipe, flags and defaults merged).
    pub config: Value,
    pub inputs: Vec<InputFile>,
    /// Files of the corpus that were skipped, with the reason (e.g. not text).
    #[serde(default)]
    pub skipped: Vec<Value>,
    pub stages: BTreeMap<String, StageRecord>,
}

impl Manifest {
    pub fn new(config: Value) -> Self {
        Self {
            schema_version: crate::SCHEMA_VERSION,
            tool_version: crate::TOOL_VERSION.to_string(),
            config,
            inputs: Vec::new(),
            skipped: Vec::new(),
            stages: BTreeMap::new(),
        }
    }

    /// Loads a manifest if one exists.
    pub fn load(path: &Path) -> Result<Option<Self>, ManifestError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|source| ManifestError::Parse { path: path.to_path_buf(), source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ManifestError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// Writes the manifest atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), ManifestError> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        crate::stage::write_atomically(path, text.as_bytes()).map_err(|source| ManifestError::Write { path: path.to_path_buf(), source })
    }
}
