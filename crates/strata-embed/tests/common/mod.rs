//! What the model tests share: the prepared model's files (`make model`).

use std::path::PathBuf;
use strata_embed::ModelFiles;

/// The model prepared under `$STRATA_CACHE` or `~/.cache/strata`.
pub fn files() -> ModelFiles {
    let cache = std::env::var_os("STRATA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/strata"));
    let dylib = std::fs::read_to_string(cache.join("onnxruntime/DYLIB_PATH")).expect("model prepared: run `make model`");
    ModelFiles { dir: cache.join("models/all-minilm-l6-v2"), onnxruntime: PathBuf::from(dylib.trim()) }
}
