//! Where the prepared model lives: `$STRATA_CACHE` or `~/.cache/strata`, as
//! `tools/model/setup.sh` (run by `make model`) leaves it.

use anyhow::{Context, Result};
use std::path::PathBuf;
use strata_embed::ModelFiles;

pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STRATA_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("strata")
}

/// Where LLM replies are cached: `$STRATA_LLM_CACHE`, else `llm/` in the cache folder.
pub fn llm_cache_dir() -> PathBuf {
    std::env::var_os("STRATA_LLM_CACHE").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("llm"))
}

pub fn model_files() -> Result<ModelFiles> {
    let cache = cache_dir();
    let dylib_file = cache.join("onnxruntime").join("DYLIB_PATH");
    let dylib = std::fs::read_to_string(&dylib_file)
        .with_context(|| format!("the model is not prepared (no `{}`); run `make model`", dylib_file.display()))?;
    Ok(ModelFiles { dir: cache.join("models").join("all-minilm-l6-v2"), onnxruntime: PathBuf::from(dylib.trim()) })
}
