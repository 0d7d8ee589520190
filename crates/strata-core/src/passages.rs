//! The passages as the stages after chunking need them (no text): ids, which chunk rows each
//! holds, target-token sizes, content hashes and documents, with their vectors made from the
//! chunk vectors. Passages hold consecutive chunks and are stored in chunk order, so passage
//! `p` is the chunk rows `first_chunk[p] .. first_chunk[p] + n_chunks[p]`.

use crate::parquet_io::{self, ParquetIoError};
use crate::Matrix;
use serde::Deserialize;
use std::path::Path;

/// Every passage of a run, in passage order (`work/passages.parquet` without its text).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassageIndex {
    pub ids: Vec<String>,
    pub first_chunk: Vec<u64>,
    pub n_chunks: Vec<u32>,
    pub n_tokens: Vec<u32>,
    pub content_hashes: Vec<String>,
    /// Per passage, its document's position among the run's documents that have passages.
    pub document: Vec<usize>,
}

#[derive(Deserialize)]
struct Row {
    passage_id: String,
    doc_id: String,
    first_chunk: u64,
    n_chunks: u32,
    n_tokens: u32,
    content_hash: String,
}

impl PassageIndex {
    /// Reads `work/passages.parquet` (every column but the text), checking that the passages
    /// cover the chunk rows in order, without gaps.
    pub fn read(path: &Path) -> Result<Self, ParquetIoError> {
        let mut index = Self::default();
        let mut last_doc: Option<String> = None;
        let columns = ["passage_id", "doc_id", "first_chunk", "n_chunks", "n_tokens", "content_hash"];
        for batch in parquet_io::batches::<Row>(path, &columns)? {
            for r in batch? {
                let expected = index.chunk_rows();
                if r.first_chunk != expected || r.n_chunks == 0 {
                    return Err(ParquetIoError::OutOfStep { path: path.to_path_buf() });
                }
                if last_doc.as_deref() != Some(r.doc_id.as_str()) {
                    let next = index.document.last().map_or(0, |d| d + 1);
                    index.document.push(next);
                    last_doc = Some(r.doc_id);
                } else {
                    index.document.push(*index.document.last().unwrap_or(&0));
                }
                index.ids.push(r.passage_id);
                index.first_chunk.push(r.first_chunk);
                index.n_chunks.push(r.n_chunks);
                index.n_tokens.push(r.n_tokens);
                index.content_hashes.push(r.content_hash);
            }
        }
        Ok(index)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Chunk rows the passages cover (all of them, once read).
    pub fn chunk_rows(&self) -> u64 {
        self.first_chunk.last().zip(self.n_chunks.last()).map_or(0, |(f, n)| f + *n as u64)
    }

    /// The chunk rows of passage `p`.
    pub fn chunks_of(&self, p: usize) -> std::ops::Range<usize> {
        let start = self.first_chunk[p] as usize;
        start..start + self.n_chunks[p] as usize
    }

    /// Per chunk row, its passage.
    pub fn passage_of_chunks(&self) -> Vec<usize> {
        let mut of = vec![0; self.chunk_rows() as usize];
        (0..self.len()).for_each(|p| of[self.chunks_of(p)].iter_mut().for_each(|x| *x = p));
        of
    }

    /// One unit vector per passage: the normalised mean of its chunks' vectors.
    pub fn vectors(&self, chunk_vectors: &Matrix) -> Matrix {
        chunk_vectors.group_means((0..self.len()).map(|p| (self.first_chunk[p] as usize, self.n_chunks[p] as usize)))
    }

    /// One unit vector per document: the normalised mean of its chunks' vectors.
    pub fn document_vectors(&self, chunk_vectors: &Matrix) -> Matrix {
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for p in 0..self.len() {
            let rows = self.chunks_of(p);
            match groups.last_mut() {
                Some(g) if p > 0 && self.document[p] == self.document[p - 1] => g.1 += rows.len(),
                _ => groups.push((rows.start, rows.len())),
            }
        }
        chunk_vectors.group_means(groups.into_iter())
    }
}
