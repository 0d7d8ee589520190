//! The passages as the stages after chunking need them (no text, no id): which chunk rows each
//! holds, target-token sizes and documents, with their vectors made from the chunk vectors.
//! The ids are read from the file as they are written out ([`PassageIndex::ids`]), so that no
//! stage holds a string per passage. Passages hold consecutive chunks and are stored in chunk order, so passage
//! `p` is the chunk rows `first_chunk[p] .. first_chunk[p] + n_chunks[p]`.

use crate::parquet_io::{self, ParquetIoError};
use crate::vectors::GroupMeans;
use crate::Matrix;
use serde::Deserialize;
use std::path::Path;

/// Every passage of a run, in passage order (`work/passages.parquet` without its text, ids
/// and content hashes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassageIndex {
    pub first_chunk: Vec<u64>,
    pub n_chunks: Vec<u32>,
    pub n_tokens: Vec<u32>,
    /// Per passage, its document's position among the run's documents that have passages.
    pub document: Vec<usize>,
}

#[derive(Deserialize)]
struct Row {
    doc_id: String,
    first_chunk: u64,
    n_chunks: u32,
    n_tokens: u32,
}

#[derive(Deserialize)]
struct Id {
    passage_id: String,
}

impl PassageIndex {
    /// Reads `work/passages.parquet` (its chunk rows, sizes and documents), checking that the passages
    /// cover the run's `chunk_rows` chunk rows in order, without gaps, each exactly once.
    pub fn read(path: &Path, chunk_rows: usize) -> Result<Self, ParquetIoError> {
        let mut index = Self::default();
        let mut last_doc: Option<String> = None;
        let columns = ["doc_id", "first_chunk", "n_chunks", "n_tokens"];
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
                index.first_chunk.push(r.first_chunk);
                index.n_chunks.push(r.n_chunks);
                index.n_tokens.push(r.n_tokens);
            }
        }
        if index.chunk_rows() != chunk_rows as u64 {
            return Err(ParquetIoError::OutOfStep { path: path.to_path_buf() });
        }
        Ok(index)
    }

    pub fn len(&self) -> usize {
        self.first_chunk.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first_chunk.is_empty()
    }

    /// The passage ids of `path` (`work/passages.parquet`), in passage order, read a batch at
    /// a time.
    pub fn ids(path: &Path) -> Result<impl Iterator<Item = Result<String, ParquetIoError>>, ParquetIoError> {
        Ok(parquet_io::rows::<Id>(path, &["passage_id"])?.map(|id| id.map(|i| i.passage_id)))
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

    /// The passage holding chunk row `row` (one of [`Self::chunk_rows`]).
    pub fn passage_of(&self, row: usize) -> usize {
        self.first_chunk.partition_point(|&first| first <= row as u64) - 1
    }

    /// Per chunk row, its passage.
    pub fn passage_of_chunks(&self) -> Vec<usize> {
        let mut of = vec![0; self.chunk_rows() as usize];
        (0..self.len()).for_each(|p| of[self.chunks_of(p)].iter_mut().for_each(|x| *x = p));
        of
    }

    /// Each passage's vector (a unit vector: the normalised mean of its chunks' vectors), handed
    /// to `f` in passage order as the chunks' vectors stream by, one batch held; none is kept.
    pub fn for_each_vector<E: From<ParquetIoError>>(
        &self,
        chunks: &Path,
        embeddings: &Path,
        mut f: impl FnMut(usize, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut passages = GroupMeans::new(self.passage_groups());
        parquet_io::for_each_vector_batch(chunks, embeddings, |rows| passages.add(rows, |p, v| f(p, &v)))?;
        passages.finish(|p, v| f(p, &v))
    }

    /// Each passage's vector with its document's (the normalised mean of the document's
    /// chunks' vectors), handed to `f` in passage order as the chunks' vectors stream by: a
    /// document's passages wait for its last chunk.
    pub fn for_each_with_document<E: From<ParquetIoError>>(
        &self,
        chunks: &Path,
        embeddings: &Path,
        mut f: impl FnMut(usize, &[f32], &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let (mut passages, mut documents) = (GroupMeans::new(self.passage_groups()), GroupMeans::new(self.document_groups()));
        let mut waiting: std::collections::VecDeque<(usize, Vec<f32>)> = Default::default();
        let mut done = |document: usize, mean: Vec<f32>, waiting: &mut std::collections::VecDeque<(usize, Vec<f32>)>| {
            while waiting.front().is_some_and(|(p, _)| self.document[*p] == document) {
                let (p, own) = waiting.pop_front().expect("a passage waits");
                f(p, &own, &mean)?;
            }
            Ok(())
        };
        parquet_io::for_each_vector_batch(chunks, embeddings, |rows| -> Result<(), E> {
            passages.add(rows, |p, own| -> Result<(), E> {
                waiting.push_back((p, own));
                Ok(())
            })?;
            documents.add(rows, |d, mean| done(d, mean, &mut waiting))
        })?;
        passages.finish(|p, own| -> Result<(), E> {
            waiting.push_back((p, own));
            Ok(())
        })?;
        documents.finish(|d, mean| done(d, mean, &mut waiting))
    }

    /// The passages' vectors ([`Self::for_each_vector`]) and one unit vector per document (the
    /// normalised mean of its chunks' vectors), in the same pass.
    pub fn read_vectors_and_documents(&self, chunks: &Path, embeddings: &Path) -> Result<(Matrix, Matrix), ParquetIoError> {
        let (mut passages, mut documents) = (GroupMeans::new(self.passage_groups()), GroupMeans::new(self.document_groups()));
        let (mut of_passages, mut of_documents, mut dim) = (Vec::new(), Vec::new(), 0);
        let mut keep = |values: &mut Vec<f32>, v: Vec<f32>| -> Result<(), ParquetIoError> {
            dim = v.len();
            values.extend(v);
            Ok(())
        };
        parquet_io::for_each_vector_batch(chunks, embeddings, |rows| -> Result<(), ParquetIoError> {
            passages.add(rows, |_, v| keep(&mut of_passages, v))?;
            documents.add(rows, |_, v| keep(&mut of_documents, v))
        })?;
        passages.finish(|_, v| keep(&mut of_passages, v))?;
        documents.finish(|_, v| keep(&mut of_documents, v))?;
        Ok((Matrix::new(of_passages, dim), Matrix::new(of_documents, dim)))
    }

    fn passage_groups(&self) -> Vec<(usize, usize)> {
        (0..self.len()).map(|p| (self.first_chunk[p] as usize, self.n_chunks[p] as usize)).collect()
    }

    /// Per document, its chunk rows as `(start, len)`.
    fn document_groups(&self) -> Vec<(usize, usize)> {
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for p in 0..self.len() {
            let rows = self.chunks_of(p);
            match groups.last_mut() {
                Some(g) if p > 0 && self.document[p] == self.document[p - 1] => g.1 += rows.len(),
                _ => groups.push((rows.start, rows.len())),
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{EmbeddingRecord, PassageRecord};

    #[test]
    fn passages_cover_the_chunks_in_order_and_number_their_documents() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("passages.parquet");
        let passage = |id: &str, doc: &str, first_chunk: u64, n_chunks: u32| PassageRecord {
            passage_id: id.into(),
            doc_id: doc.into(),
            first_chunk,
            n_chunks,
            text: String::new(),
            n_tokens: 10,
            content_hash: crate::hash::text_hash(id),
        };
        let written = [passage("a#p0", "a", 0, 2), passage("a#p1", "a", 2, 1), passage("b#p0", "b", 3, 1)];
        crate::parquet_io::write_rows(&path, &PassageRecord::fields(), &written, &[]).expect("write");
        let index = PassageIndex::read(&path, 4).expect("read");
        assert_eq!((index.document.as_slice(), index.chunks_of(0), index.passage_of_chunks()), (&[0, 0, 1][..], 0..2, vec![0, 0, 1, 2]));
        assert_eq!((0..4).map(|row| index.passage_of(row)).collect::<Vec<_>>(), [0, 0, 1, 2]);
        // Chunks 0 and 1 point one way, 2 another, 3 a third: passage 0 is their mean, document
        // a the mean of its three chunks.
        let vectors = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]];
        let rows: Vec<EmbeddingRecord> =
            vectors.iter().enumerate().map(|(i, v)| EmbeddingRecord { chunk_id: format!("c{i}"), embedding: v.to_vec() }).collect();
        let embeddings = dir.path().join("embeddings.parquet");
        crate::parquet_io::write_rows(&embeddings, &EmbeddingRecord::fields(2), &rows, &[]).expect("write");
        let (passages, documents) = index.read_vectors_and_documents(&embeddings, &embeddings).expect("vectors");
        let mut streamed = Vec::new();
        let keep = |_: usize, v: &[f32]| -> Result<(), ParquetIoError> {
            streamed.extend_from_slice(v);
            Ok(())
        };
        index.for_each_vector(&embeddings, &embeddings, keep).expect("vectors");
        assert_eq!(streamed, passages.values());
        assert_eq!((passages.row(0), passages.rows()), (&[1.0, 0.0][..], 3));
        assert!((documents.row(0)[0] - 2.0 / 5f32.sqrt()).abs() < 1e-6 && documents.rows() == 2);
        // Fewer or more chunks than the passages cover, or a gap, is named.
        assert!(matches!(PassageIndex::read(&path, 5), Err(ParquetIoError::OutOfStep { .. })));
        let gap = [passage("a#p0", "a", 0, 2), passage("b#p0", "b", 3, 1)];
        crate::parquet_io::write_rows(&path, &PassageRecord::fields(), &gap, &[]).expect("write");
        assert!(matches!(PassageIndex::read(&path, 4), Err(ParquetIoError::OutOfStep { .. })));
        // The ids and hashes are read apart; a content hash that is not one (the hashes are
        // read as numbers) is named with the file.
        crate::parquet_io::write_rows(&path, &PassageRecord::fields(), &written, &[]).expect("write");
        let ids: Vec<String> = PassageIndex::ids(&path).expect("ids").collect::<Result<_, _>>().expect("ids");
        assert_eq!(ids, ["a#p0", "a#p1", "b#p0"]);
        let hashes: Vec<u64> = parquet_io::content_hashes(&path).expect("hashes").collect::<Result<_, _>>().expect("hashes");
        assert_eq!(hashes[2], u64::from_str_radix(&crate::hash::text_hash("b#p0"), 16).expect("hex"));
        let garbled = [PassageRecord { content_hash: "not-a-hash".into(), ..passage("a#p0", "a", 0, 4) }];
        crate::parquet_io::write_rows(&path, &PassageRecord::fields(), &garbled, &[]).expect("write");
        let err = parquet_io::content_hashes(&path).expect("hashes").next().expect("a row").expect_err("a garbled hash");
        assert!(err.to_string().contains("passages.parquet") && err.to_string().contains("not-a-hash"), "{err}");
    }
}
