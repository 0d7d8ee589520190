//! Dense retrieval over the run's chunk vectors. The index stage writes them beside the
//! tantivy index in a form any client can memory-map: `dense/vectors.f32` (little-endian f32
//! rows, one per chunk, in `chunks.parquet` order), `dense/leaves.u32` (each row's leaf, for
//! search within a subtree), `dense/chunk_ids.txt` (one id a line) and `dense/meta.json` (the
//! embedding model, its variant and the hash of its weights, the width and the count), so a
//! query is embedded by the very model that embedded the chunks. Search is exact: one pass
//! of dot products over the rows (9 ms on MedQuAD's 28,527 fp32 vectors; an approximate index
//! is for corpora where that pass grows too long, BENCHMARKS.md).

use crate::IndexError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use strata_core::vectors::dot;

pub const META: &str = "meta.json";
pub const VECTORS: &str = "vectors.f32";
pub const LEAVES: &str = "leaves.u32";
pub const CHUNK_IDS: &str = "chunk_ids.txt";

/// What made the vectors, and their shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseMeta {
    /// The model's name and its variant as the recipe names it (`minilm`, `minilm-int8`, `static`).
    pub model: String,
    pub variant: String,
    /// sha256 of the model weights the chunks were embedded with.
    pub model_sha256: String,
    pub dim: usize,
    pub rows: usize,
}

/// The dense files of a run, loaded.
pub struct DenseIndex {
    pub meta: DenseMeta,
    vectors: Vec<f32>,
    leaves: Vec<u32>,
    ids: Vec<String>,
}

impl DenseIndex {
    /// Reads `dir` (a run's `dense/`), checking every file against `meta.json`.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|source| IndexError::Dense { path: dir.join(name), source });
        let bad = |name: &str, what: String| IndexError::DenseFormat { path: dir.join(name), message: what };
        let meta: DenseMeta = serde_json::from_slice(&read(META)?).map_err(|e| bad(META, e.to_string()))?;
        let floats = |name: &str, n: usize| -> Result<Vec<f32>, IndexError> {
            let bytes = read(name)?;
            if bytes.len() != n * 4 {
                return Err(bad(name, format!("{} bytes, expected {}", bytes.len(), n * 4)));
            }
            Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        };
        let vectors = floats(VECTORS, meta.rows * meta.dim)?;
        let leaf_bytes = read(LEAVES)?;
        if leaf_bytes.len() != meta.rows * 4 {
            return Err(bad(LEAVES, format!("{} bytes, expected {}", leaf_bytes.len(), meta.rows * 4)));
        }
        let leaves = leaf_bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let ids: Vec<String> =
            String::from_utf8(read(CHUNK_IDS)?).map_err(|e| bad(CHUNK_IDS, e.to_string()))?.lines().map(str::to_string).collect();
        if ids.len() != meta.rows {
            return Err(bad(CHUNK_IDS, format!("{} ids, expected {}", ids.len(), meta.rows)));
        }
        Ok(Self { meta, vectors, leaves, ids })
    }

    pub fn chunk_id(&self, row: usize) -> &str {
        &self.ids[row]
    }

    pub fn leaf(&self, row: usize) -> u32 {
        self.leaves[row]
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.meta.dim..(i + 1) * self.meta.dim]
    }

    /// The `k` rows closest to `query` (cosine; both are unit vectors) among those whose leaf
    /// `keep` accepts, best first (ties to the earlier row).
    pub fn search(&self, query: &[f32], keep: &dyn Fn(u32) -> bool, k: usize) -> Result<Vec<(usize, f32)>, IndexError> {
        if query.len() != self.meta.dim {
            return Err(IndexError::Width { query: query.len(), index: self.meta.dim });
        }
        let mut scored: Vec<(usize, f32)> =
            (0..self.meta.rows).filter(|&i| keep(self.leaves[i])).map(|i| (i, dot(self.row(i), query))).collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        scored.select_nth_unstable_by(k - 1, order);
        scored.truncate(k);
        scored.sort_by(order);
        Ok(scored)
    }
}

/// Writes the dense files into `dir` as the chunks stream by, then the meta.
pub struct DenseWriter {
    dir: PathBuf,
    vectors: std::io::BufWriter<std::fs::File>,
    leaves: std::io::BufWriter<std::fs::File>,
    ids: std::io::BufWriter<std::fs::File>,
    rows: usize,
    dim: usize,
}

impl DenseWriter {
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let open = |name: &str| std::fs::File::create(dir.join(name)).map(std::io::BufWriter::new);
        Ok(Self { dir: dir.to_path_buf(), vectors: open(VECTORS)?, leaves: open(LEAVES)?, ids: open(CHUNK_IDS)?, rows: 0, dim: 0 })
    }

    pub fn push(&mut self, chunk_id: &str, leaf: u32, vector: &[f32]) -> std::io::Result<()> {
        if self.rows > 0 && vector.len() != self.dim {
            let message = format!("the vector of `{chunk_id}` has {} values, the ones before {}", vector.len(), self.dim);
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
        }
        self.dim = vector.len();
        for x in vector {
            self.vectors.write_all(&x.to_le_bytes())?;
        }
        self.leaves.write_all(&leaf.to_le_bytes())?;
        writeln!(self.ids, "{chunk_id}")?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes the files and writes the meta.
    pub fn finish(mut self, mut meta: DenseMeta) -> std::io::Result<()> {
        for w in [&mut self.vectors, &mut self.leaves, &mut self.ids] {
            w.flush()?;
        }
        (meta.dim, meta.rows) = (self.dim, self.rows);
        let text = serde_json::to_string_pretty(&meta).map_err(std::io::Error::other)?;
        std::fs::write(self.dir.join(META), text + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> DenseMeta {
        DenseMeta { model: "m".into(), variant: "static".into(), model_sha256: "00".into(), dim: 0, rows: 0 }
    }

    #[test]
    fn rows_round_trip_and_search_is_exact_within_leaves() {
        let dir = tempfile::tempdir().expect("dir");
        let mut w = DenseWriter::create(dir.path()).expect("create");
        let s = std::f32::consts::FRAC_1_SQRT_2;
        for (id, leaf, v) in [("a", 1, [1.0, 0.0]), ("b", 2, [0.0, 1.0]), ("c", 1, [s, s])] {
            w.push(id, leaf, &v).expect("push");
        }
        w.finish(meta()).expect("finish");
        let d = DenseIndex::open(dir.path()).expect("open");
        assert_eq!((d.meta.rows, d.meta.dim), (3, 2));
        let hits = d.search(&[0.0, 1.0], &|_| true, 2).expect("search");
        assert_eq!(hits.iter().map(|h| d.chunk_id(h.0)).collect::<Vec<_>>(), ["b", "c"]);
        let hits = d.search(&[0.0, 1.0], &|leaf| leaf == 1, 5).expect("search");
        assert_eq!(hits.iter().map(|h| d.chunk_id(h.0)).collect::<Vec<_>>(), ["c", "a"]);
        assert_eq!(d.leaf(1), 2);
        let err = d.search(&[1.0, 0.0, 0.0], &|_| true, 3).expect_err("a query of another width");
        assert!(err.to_string().contains("3 values, the run's vectors 2"), "{err}");
    }

    #[test]
    fn a_truncated_file_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let mut w = DenseWriter::create(dir.path()).expect("create");
        w.push("a", 1, &[1.0, 0.0]).expect("push");
        w.finish(meta()).expect("finish");
        let bytes = std::fs::read(dir.path().join(VECTORS)).expect("read");
        std::fs::write(dir.path().join(VECTORS), &bytes[..4]).expect("truncate");
        let err = DenseIndex::open(dir.path()).err().expect("truncated").to_string();
        assert!(err.contains("vectors.f32") && err.contains("expected 8"), "{err}");
    }
}
