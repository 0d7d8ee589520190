//! The passages as the stages after chunking need them (no text, no id): which chunk rows each
//! holds, target-token sizes and documents, with their vectors made from the chunk vectors.
//! [`PassagesFile`] reads them as a stream, a batch at a time, so that a stage over every
//! passage holds none of them; [`PassageIndex`] holds them all, for the stages that hold at most
//! a sample's worth (or one shard's). The ids are read from the file as they are written out
//! ([`PassageIndex::ids`]), so that no stage holds a string per passage. Passages hold
//! consecutive chunks and are stored in chunk order, so passage `p` is the chunk rows
//! `first_chunk[p] .. first_chunk[p] + n_chunks[p]`.

use crate::parquet_io::{self, ParquetIoError};
use crate::vectors::GroupMeans;
use crate::Matrix;
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

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

/// One passage as [`PassagesFile::rows`] reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassageRow {
    pub first_chunk: u64,
    pub n_chunks: u32,
    pub n_tokens: u32,
    /// Its document's position among the run's documents that have passages.
    pub document: usize,
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

/// `work/passages.parquet` of a run of `chunk_rows` chunk rows, read as a stream.
#[derive(Debug, Clone)]
pub struct PassagesFile {
    path: PathBuf,
    chunk_rows: u64,
}

impl PassagesFile {
    pub fn new(path: &Path, chunk_rows: u64) -> Self {
        Self { path: path.to_path_buf(), chunk_rows }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run's chunk rows, which the passages cover.
    pub fn chunk_rows(&self) -> u64 {
        self.chunk_rows
    }

    /// How many passages the file holds (from its footer).
    pub fn count(&self) -> Result<u64, ParquetIoError> {
        parquet_io::num_rows(&self.path)
    }

    /// The passages in order, a batch held at a time, checked as they come: they must cover
    /// the run's chunk rows in order, without gaps, each exactly once (else the last item is
    /// an error naming the file).
    pub fn rows(&self) -> Result<PassageRows, ParquetIoError> {
        let columns = ["doc_id", "first_chunk", "n_chunks", "n_tokens"];
        let rows = parquet_io::rows::<Row>(&self.path, &columns)?;
        Ok(PassageRows { rows, path: self.path.clone(), chunk_rows: self.chunk_rows, covered: 0, document: None, done: false })
    }

    /// Each passage's vector (a unit vector: the normalised mean of its chunks' vectors), handed
    /// to `f` in passage order as the chunks' vectors stream by, one batch held; none is kept.
    pub fn for_each_vector<E: From<ParquetIoError>>(
        &self,
        chunks: &Path,
        embeddings: &Path,
        mut f: impl FnMut(usize, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut passages = GroupMeans::over(self.rows()?.map(|r| r.map(|r| (r.first_chunk as usize, r.n_chunks as usize))));
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
        let mut passages = GroupMeans::over(self.rows()?.map(|r| r.map(|r| (r.first_chunk as usize, r.n_chunks as usize))));
        let mut documents = GroupMeans::over(document_groups(self.rows()?));
        // The waiting passages' documents, read in step with them.
        let mut document_of = self.rows()?.map(|r| r.map(|r| r.document)).peekable();
        let mut waiting: VecDeque<(usize, Vec<f32>)> = VecDeque::new();
        let mut done = |document: usize, mean: Vec<f32>, waiting: &mut VecDeque<(usize, Vec<f32>)>| -> Result<(), E> {
            while !waiting.is_empty() {
                match document_of.peek() {
                    Some(Ok(d)) if *d == document => {}
                    Some(Err(_)) => return Err(document_of.next().expect("peeked").expect_err("an error").into()),
                    _ => break,
                }
                document_of.next();
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
}

/// The passages of a [`PassagesFile`], in order: [`PassagesFile::rows`].
pub struct PassageRows {
    rows: parquet_io::Rows<Row>,
    path: PathBuf,
    chunk_rows: u64,
    /// Chunk rows the passages so far cover.
    covered: u64,
    /// The last passage's document: its id and position.
    document: Option<(String, usize)>,
    done: bool,
}

impl Iterator for PassageRows {
    type Item = Result<PassageRow, ParquetIoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let out_of_step = || ParquetIoError::OutOfStep { path: self.path.clone() };
        let row = match self.rows.next() {
            None => {
                self.done = true;
                return (self.covered != self.chunk_rows).then(|| Err(out_of_step()));
            }
            Some(Err(e)) => Err(e),
            Some(Ok(r)) if r.first_chunk != self.covered || r.n_chunks == 0 => Err(out_of_step()),
            Some(Ok(r)) => Ok(r),
        };
        let r = match row {
            Ok(r) => r,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let document = match &self.document {
            Some((id, d)) if *id == r.doc_id => *d,
            Some((_, d)) => d + 1,
            None => 0,
        };
        if self.document.as_ref().is_none_or(|(id, _)| *id != r.doc_id) {
            self.document = Some((r.doc_id, document));
        }
        self.covered += r.n_chunks as u64;
        Some(Ok(PassageRow { first_chunk: r.first_chunk, n_chunks: r.n_chunks, n_tokens: r.n_tokens, document }))
    }
}

/// What each passage's `(value, n_chunks)` gives, once for each of its chunks: per passage in
/// passage order, per chunk in row order. An error comes once, in place of the passage's chunks.
pub fn per_chunk<T: Copy, E>(passages: impl Iterator<Item = Result<(T, u32), E>>) -> impl Iterator<Item = Result<T, E>> {
    passages.flat_map(|passage| {
        let again = passage.as_ref().ok().map(|&(value, n_chunks)| std::iter::repeat_n(value, n_chunks.saturating_sub(1) as usize));
        std::iter::once(passage.map(|(value, _)| value)).chain(again.into_iter().flatten().map(Ok))
    })
}

/// Per document, its chunk rows as `(start, len)`, from the passages in order.
fn document_groups(rows: PassageRows) -> impl Iterator<Item = Result<(usize, usize), ParquetIoError>> {
    let mut rows = rows.peekable();
    std::iter::from_fn(move || {
        let first = match rows.next()? {
            Ok(first) => first,
            Err(e) => return Some(Err(e)),
        };
        let (start, mut len) = (first.first_chunk as usize, first.n_chunks as usize);
        while let Some(Ok(next)) = rows.next_if(|r| r.as_ref().is_ok_and(|r| r.document == first.document)) {
            len += next.n_chunks as usize;
        }
        Some(Ok((start, len)))
    })
}

impl PassageIndex {
    /// Reads `work/passages.parquet` (its chunk rows, sizes and documents), checking that the passages
    /// cover the run's `chunk_rows` chunk rows in order, without gaps, each exactly once.
    pub fn read(path: &Path, chunk_rows: usize) -> Result<Self, ParquetIoError> {
        let mut index = Self::default();
        for row in PassagesFile::new(path, chunk_rows as u64).rows()? {
            let row = row?;
            index.first_chunk.push(row.first_chunk);
            index.n_chunks.push(row.n_chunks);
            index.n_tokens.push(row.n_tokens);
            index.document.push(row.document);
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

    /// Per chunk row, its passage.
    pub fn passage_of_chunks(&self) -> Vec<usize> {
        let mut of = vec![0; self.chunk_rows() as usize];
        (0..self.len()).for_each(|p| of[self.chunks_of(p)].iter_mut().for_each(|x| *x = p));
        of
    }

    /// The passages' vectors ([`PassagesFile::for_each_vector`]) and one unit vector per document (the
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
        let file = PassagesFile::new(&path, 4);
        file.for_each_vector(&embeddings, &embeddings, keep).expect("vectors");
        assert_eq!(streamed, passages.values());
        // With their documents' vectors, as a stream: the same as in memory.
        let mut with_documents = Vec::new();
        let keep = |p: usize, own: &[f32], document: &[f32]| -> Result<(), ParquetIoError> {
            with_documents.push((p, own.to_vec(), document.to_vec()));
            Ok(())
        };
        file.for_each_with_document(&embeddings, &embeddings, keep).expect("vectors");
        let expected: Vec<_> = (0..3).map(|p| (p, passages.row(p).to_vec(), documents.row(index.document[p]).to_vec())).collect();
        assert_eq!(with_documents, expected);
        assert_eq!((passages.row(0), passages.rows()), (&[1.0, 0.0][..], 3));
        assert!((documents.row(0)[0] - 2.0 / 5f32.sqrt()).abs() < 1e-6 && documents.rows() == 2);
        // Per chunk, its passage's document.
        let documents: Vec<usize> =
            per_chunk(file.rows().expect("rows").map(|r| r.map(|r| (r.document, r.n_chunks)))).collect::<Result<_, _>>().expect("rows");
        assert_eq!(documents, [0, 0, 0, 1]);
        // Fewer or more chunks than the passages cover, or a gap, is named.
        assert!(matches!(PassageIndex::read(&path, 5), Err(ParquetIoError::OutOfStep { .. })));
        let streamed = PassagesFile::new(&path, 5).for_each_vector(&embeddings, &embeddings, |_, _| Ok::<(), ParquetIoError>(()));
        assert!(matches!(streamed, Err(ParquetIoError::OutOfStep { .. })), "{streamed:?}");
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
