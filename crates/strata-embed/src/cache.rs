//! Vectors cached by the hash of the model input, across runs: a rerun after a small corpus
//! change embeds only the new text. One Parquet file per model file (keyed by its hash), so
//! vectors of different models never mix.

use crate::FULL_INPUT;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use strata_core::parquet_io;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedVector {
    key: String,
    embedding: Vec<f32>,
}

fn fields(dim: usize) -> Vec<arrow::datatypes::FieldRef> {
    use arrow::datatypes::{DataType, Field};
    use std::sync::Arc;
    vec![
        Arc::new(Field::new("key", DataType::Utf8, false)),
        Arc::new(Field::new(
            "embedding",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim as i32),
            false,
        )),
    ]
}

/// The cache key of a model input.
pub fn key(input: &str) -> String {
    strata_core::hash::sha256_hex(input.as_bytes())[..32].to_string()
}

/// Vectors by key: the run's own (each distinct input embedded once, across the stage's
/// windows), plus, when opened from a folder, those of earlier runs, saved back at the end.
pub struct VectorCache {
    path: Option<PathBuf>,
    vectors: HashMap<String, Vec<f32>>,
}

impl VectorCache {
    /// A cache that lives only as long as the stage.
    pub fn in_memory() -> Self {
        Self { path: None, vectors: HashMap::new() }
    }

    /// Opens the cache of the model whose file hash is `model_sha256`, reading `input_tokens`
    /// tokens of a text, under `dir`. A cache that cannot be read is ignored (and rewritten):
    /// it only ever saves time.
    pub fn open(dir: &Path, model_sha256: &str, input_tokens: usize) -> Self {
        let model = &model_sha256[..16.min(model_sha256.len())];
        // The model's whole input keeps the name the cache had before the setting existed.
        let name =
            if input_tokens >= FULL_INPUT { format!("vectors-{model}.parquet") } else { format!("vectors-{model}-{input_tokens}.parquet") };
        let path = dir.join(name);
        let vectors = if path.exists() {
            match parquet_io::read_rows::<CachedVector>(&path) {
                Ok(rows) => rows.into_iter().map(|r| (r.key, r.embedding)).collect(),
                Err(e) => {
                    tracing::warn!("ignoring the unreadable vector cache `{}`: {e}", path.display());
                    HashMap::new()
                }
            }
        } else {
            HashMap::new()
        };
        Self { path: Some(path), vectors }
    }

    pub fn get(&self, key: &str) -> Option<&Vec<f32>> {
        self.vectors.get(key)
    }

    pub fn insert(&mut self, key: String, vector: Vec<f32>) {
        self.vectors.insert(key, vector);
    }

    /// Writes the cache (a temporary file of a name no other process has, on any machine
    /// sharing the folder, then a rename), unless it lives in memory only. Processes saving at
    /// once (shards) each replace the file whole: the last one's vectors are kept. The folder
    /// is made when missing (a fresh machine's first run).
    pub fn save(&self, dim: usize) -> Result<(), parquet_io::ParquetIoError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let failed = |e: std::io::Error| parquet_io::ParquetIoError::Write { path: path.clone(), source: e.into() };
        let mut rows: Vec<CachedVector> = self.vectors.iter().map(|(k, v)| CachedVector { key: k.clone(), embedding: v.clone() }).collect();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(failed)?;
        let tmp = tempfile::Builder::new().prefix(".vectors-").tempfile_in(dir).map_err(failed)?;
        parquet_io::write_rows(tmp.path(), &fields(dim), &rows, &[])?;
        tmp.persist(path).map(drop).map_err(|e| failed(e.error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_vectors_are_found_by_the_next_run_and_no_temporary_file_stays() {
        let root = tempfile::tempdir().expect("tempdir");
        // The cache's folder does not exist yet, as on a fresh machine.
        let dir = &root.path().join("vectors");
        let mut cache = VectorCache::open(dir, "0123456789abcdef0123", FULL_INPUT);
        cache.insert(key("a text"), vec![0.6, 0.8]);
        cache.save(2).expect("save");
        let again = VectorCache::open(dir, "0123456789abcdef0123", FULL_INPUT);
        assert_eq!(again.get(&key("a text")), Some(&vec![0.6, 0.8]));
        let names: Vec<_> = std::fs::read_dir(dir).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["vectors-0123456789abcdef.parquet"]);
        // Another input length keeps its own file.
        assert!(VectorCache::open(dir, "0123456789abcdef0123", 128).get(&key("a text")).is_none());
    }
}
