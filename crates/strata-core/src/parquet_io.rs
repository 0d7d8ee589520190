//! Reading and writing the row types of [`crate::records`] as Parquet, deterministically
//! (same rows, same bytes): fixed writer settings, no timestamps.

use crate::records::EmbeddingRecord;
use arrow::datatypes::{FieldRef, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per row group (what a reader skips or selects by; it reads `BATCH_ROWS` at a time).
const ROW_GROUP_ROWS: usize = 16 * 1024;

/// Rows held as Arrow arrays at a time, reading or writing: a row group of long texts (the
/// passages) is hundreds of MB as arrays. Writing, it is the writer's own batch size, so the
/// bytes are those of handing it a whole row group at once.
const BATCH_ROWS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ParquetIoError {
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to read `{path}` (is the run directory from an older or interrupted run?)")]
    Read {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("`{path}` does not line up with the chunks (its rows differ); rerun the stage that wrote it")]
    OutOfStep { path: PathBuf },
    #[error("`{path}`: content_hash `{value}` is not hexadecimal; rerun the chunk stage")]
    ContentHash { path: PathBuf, value: String },
}

/// A `content_hash` value of `path` (16 hexadecimal digits, `hash::text_hash`) as a number:
/// 8 bytes held instead of a string.
pub fn content_hash(path: &Path, value: &str) -> Result<u64, ParquetIoError> {
    u64::from_str_radix(value, 16).map_err(|_| ParquetIoError::ContentHash { path: path.to_path_buf(), value: value.to_string() })
}

#[derive(serde::Deserialize)]
struct ContentHashCell {
    content_hash: String,
}

/// The `content_hash` column of `path`, each as a number ([`content_hash`]), row by row.
pub fn content_hashes(path: &Path) -> Result<impl Iterator<Item = Result<u64, ParquetIoError>>, ParquetIoError> {
    let file = path.to_path_buf();
    Ok(rows::<ContentHashCell>(path, &["content_hash"])?.map(move |cell| cell.and_then(|c| content_hash(&file, &c.content_hash))))
}

/// Writes `rows` with the schema `fields` and key-value `metadata` to `path`.
pub fn write_rows<T: Serialize>(path: &Path, fields: &[FieldRef], rows: &[T], metadata: &[(&str, String)]) -> Result<(), ParquetIoError> {
    write_paged(path, fields, rows, metadata, Pages::Default)
}

/// Writes `rows` as [`write_rows`] does, without dictionaries and in small pages, for a file
/// that a merge reads beside one file per shard (a shard's sorted counts): a reader holds one
/// page per column, and a dictionary page of distinct strings is every value of its row group.
pub fn write_rows_for_merge<T: Serialize>(path: &Path, fields: &[FieldRef], rows: &[T]) -> Result<(), ParquetIoError> {
    write_paged(path, fields, rows, &[], Pages::Small)
}

/// How a file's pages are written: dictionary-encoded in pages of the writer's default size,
/// or plain in pages of at most `SMALL_PAGE_BYTES`.
#[derive(Clone, Copy, PartialEq)]
enum Pages {
    Default,
    Small,
}

const SMALL_PAGE_BYTES: usize = 64 * 1024;

fn write_paged<T: Serialize>(
    path: &Path,
    fields: &[FieldRef],
    rows: &[T],
    metadata: &[(&str, String)],
    pages: Pages,
) -> Result<(), ParquetIoError> {
    let mut file = GroupWriter::create(path, fields, metadata, pages)?;
    for batch in rows.chunks(BATCH_ROWS) {
        file.write(&batch)?;
    }
    file.close()
}

/// A Parquet file written a row group at a time; every group but the last is full.
struct GroupWriter {
    path: PathBuf,
    fields: Vec<FieldRef>,
    schema: Arc<Schema>,
    writer: ArrowWriter<File>,
}

impl GroupWriter {
    fn create(path: &Path, fields: &[FieldRef], metadata: &[(&str, String)], pages: Pages) -> Result<Self, ParquetIoError> {
        let wrap = |e: Box<dyn std::error::Error + Send + Sync>| ParquetIoError::Write { path: path.to_path_buf(), source: e };
        let meta: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let schema = Arc::new(Schema::new(fields.to_vec()).with_metadata(meta));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| wrap(e.into()))?;
        }
        let file = File::create(path).map_err(|e| wrap(e.into()))?;
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_write_batch_size(BATCH_ROWS)
            .set_created_by(format!("strata {}", crate::TOOL_VERSION));
        if pages == Pages::Small {
            props = props.set_dictionary_enabled(false).set_data_page_size_limit(SMALL_PAGE_BYTES);
        }
        let props = props.build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| wrap(e.into()))?;
        Ok(Self { path: path.to_path_buf(), fields: fields.to_vec(), schema, writer })
    }

    fn error(&self, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ParquetIoError {
        ParquetIoError::Write { path: self.path.clone(), source: e.into() }
    }

    fn write<B: Serialize>(&mut self, rows: &B) -> Result<(), ParquetIoError> {
        let batch = serde_arrow::to_record_batch(&self.fields, rows).map_err(|e| self.error(e))?;
        self.write_batch(&batch)
    }

    /// Writes `batch`'s columns, which must have this file's types, under this file's schema.
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), ParquetIoError> {
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec()).map_err(|e| self.error(e))?;
        self.writer.write(&batch).map_err(|e| self.error(e))
    }

    fn close(self) -> Result<(), ParquetIoError> {
        let path = self.path;
        self.writer.close().map_err(|e| ParquetIoError::Write { path, source: e.into() })?;
        Ok(())
    }
}

/// Rows pushed one at a time and written `BATCH_ROWS` at a time, for a stage that makes its
/// rows as it streams its input. The bytes are those `write_rows` writes for the same rows.
pub struct RowWriter<T: Serialize> {
    file: GroupWriter,
    pending: Vec<T>,
    rows: u64,
}

impl<T: Serialize> RowWriter<T> {
    pub fn create(path: &Path, fields: &[FieldRef], metadata: &[(&str, String)]) -> Result<Self, ParquetIoError> {
        Ok(Self { file: GroupWriter::create(path, fields, metadata, Pages::Default)?, pending: Vec::with_capacity(BATCH_ROWS), rows: 0 })
    }

    pub fn push(&mut self, row: T) -> Result<(), ParquetIoError> {
        self.pending.push(row);
        self.rows += 1;
        if self.pending.len() == BATCH_ROWS {
            self.file.write(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes what is pending and the footer.
    pub fn close(mut self) -> Result<(), ParquetIoError> {
        if !self.pending.is_empty() {
            self.file.write(&self.pending)?;
        }
        self.file.close()
    }
}

/// Record batches of any sizes written on `BATCH_ROWS` rows at a time, for files joined
/// without decoding their rows (the merges of a sharded run). The bytes are those `write_rows`
/// writes for the same rows.
pub struct BatchWriter {
    file: GroupWriter,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows: u64,
}

impl BatchWriter {
    pub fn create(path: &Path, fields: &[FieldRef], metadata: &[(&str, String)]) -> Result<Self, ParquetIoError> {
        Ok(Self { file: GroupWriter::create(path, fields, metadata, Pages::Default)?, pending: Vec::new(), pending_rows: 0, rows: 0 })
    }

    /// Writes `batch` on in slices of `BATCH_ROWS` from the start of the file (slices
    /// share the batch's memory; only a slice's worth is ever copied, to join its pieces).
    pub fn push(&mut self, mut batch: RecordBatch) -> Result<(), ParquetIoError> {
        self.rows += batch.num_rows() as u64;
        while self.pending_rows + batch.num_rows() >= BATCH_ROWS {
            let take = BATCH_ROWS - self.pending_rows;
            self.pending.push(batch.slice(0, take));
            batch = batch.slice(take, batch.num_rows() - take);
            let joined = self.joined()?;
            self.file.write_batch(&joined)?;
            (self.pending, self.pending_rows) = (Vec::new(), 0);
        }
        if batch.num_rows() > 0 {
            self.pending_rows += batch.num_rows();
            self.pending.push(batch);
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes what is pending and the footer.
    pub fn close(mut self) -> Result<(), ParquetIoError> {
        if self.pending_rows > 0 {
            let joined = self.joined()?;
            self.file.write_batch(&joined)?;
        }
        self.file.close()
    }

    fn joined(&self) -> Result<RecordBatch, ParquetIoError> {
        let schema = self.pending.first().map_or_else(|| self.file.schema.clone(), |b| b.schema());
        arrow::compute::concat_batches(&schema, &self.pending).map_err(|e| self.file.error(e))
    }
}

/// Reads every row of `path` into `T`.
pub fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, ParquetIoError> {
    let mut rows = Vec::new();
    for part in batches::<T>(path, &[])? {
        rows.append(&mut part?);
    }
    Ok(rows)
}

/// The rows of `path` a record batch at a time, decoding only the named `columns` (all of
/// them when empty) into `T`, whose fields must be among them. Files of the same row count
/// give batches of the same sizes, so several can be read in step.
pub fn batches<T: DeserializeOwned>(path: &Path, columns: &[&str]) -> Result<Batches<T>, ParquetIoError> {
    let reader = batch_reader(path, columns)?;
    Ok(Batches { path: path.to_path_buf(), reader, rows: std::marker::PhantomData })
}

/// The rows of `path` one at a time, decoded a batch at a time (as [`batches`] reads them).
pub fn rows<T: DeserializeOwned>(path: &Path, columns: &[&str]) -> Result<Rows<T>, ParquetIoError> {
    Ok(Rows { batches: batches(path, columns)?, batch: Vec::new().into_iter() })
}

/// The rows of a file in order: [`rows`].
pub struct Rows<T> {
    batches: Batches<T>,
    batch: std::vec::IntoIter<T>,
}

impl<T: DeserializeOwned> Iterator for Rows<T> {
    type Item = Result<T, ParquetIoError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.batch.next() {
                return Some(Ok(row));
            }
            match self.batches.next()? {
                Ok(batch) => self.batch = batch.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The rows `rows` of `path` (counted from 0), as [`batches`] reads them: row groups outside
/// the range are not read, and only the range's rows of the others are decoded.
pub fn batches_in<T: DeserializeOwned>(path: &Path, columns: &[&str], rows: std::ops::Range<u64>) -> Result<Batches<T>, ParquetIoError> {
    use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
    let wrap = read_error(path);
    let builder = projected(path, columns)?;
    let (mut groups, mut selection, mut first) = (Vec::new(), Vec::new(), 0u64);
    for (g, group) in builder.metadata().row_groups().iter().enumerate() {
        let end = first + group.num_rows() as u64;
        let (from, to) = (rows.start.max(first), rows.end.min(end));
        if from < to {
            groups.push(g);
            let selectors = [
                RowSelector::skip((from - first) as usize),
                RowSelector::select((to - from) as usize),
                RowSelector::skip((end - to) as usize),
            ];
            selection.extend(selectors.into_iter().filter(|s| s.row_count > 0));
        }
        first = end;
    }
    if rows.end > first {
        return Err(wrap(format!("rows {}..{} asked of a file of {first} rows", rows.start, rows.end).into()));
    }
    let reader = builder.with_row_groups(groups).with_row_selection(RowSelection::from(selection)).build().map_err(|e| wrap(e.into()))?;
    Ok(Batches { path: path.to_path_buf(), reader, rows: std::marker::PhantomData })
}

/// Calls `f` on every row of `path`, in order, decoding a batch at a time.
pub fn for_each_row<T: DeserializeOwned, E: From<ParquetIoError>>(path: &Path, mut f: impl FnMut(T) -> Result<(), E>) -> Result<(), E> {
    for batch in batches::<T>(path, &[])? {
        batch?.into_iter().try_for_each(&mut f)?;
    }
    Ok(())
}

/// The record batches of `path`, as `batches` reads them.
pub struct Batches<T> {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    rows: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> Iterator for Batches<T> {
    type Item = Result<Vec<T>, ParquetIoError>;

    fn next(&mut self) -> Option<Self::Item> {
        let wrap = read_error(&self.path);
        let batch = self.reader.next()?;
        Some(batch.map_err(|e| wrap(e.into())).and_then(|b| serde_arrow::from_record_batch(&b).map_err(|e| wrap(e.into()))))
    }
}

impl<T: DeserializeOwned> Batches<T> {
    /// The next batch, read in step with another file's batch of `rows` rows: an error when
    /// this file has ended or its batch is of another size.
    pub fn next_in_step(&mut self, rows: usize) -> Result<Vec<T>, ParquetIoError> {
        match self.next() {
            Some(Ok(batch)) if batch.len() == rows => Ok(batch),
            Some(Err(e)) => Err(e),
            _ => Err(ParquetIoError::OutOfStep { path: self.path.clone() }),
        }
    }

    /// An error unless every row has been read: files read in step end together.
    pub fn end_in_step(mut self) -> Result<(), ParquetIoError> {
        match self.next() {
            None => Ok(()),
            Some(_) => Err(ParquetIoError::OutOfStep { path: self.path.clone() }),
        }
    }
}

/// The vectors of an embeddings file gathered into one flat matrix (`dim` floats a row) while
/// the chunks are read batch by batch: each batch's ids must be the next rows' ids.
pub struct VectorsInStep {
    rows: Batches<EmbeddingRecord>,
    total: usize,
    values: Vec<f32>,
    dim: usize,
}

impl VectorsInStep {
    pub fn open(path: &Path) -> Result<Self, ParquetIoError> {
        Ok(Self { total: num_rows(path)? as usize, rows: batches(path, &[])?, values: Vec::new(), dim: 0 })
    }

    /// Appends the vectors of the chunks `ids`, the next rows of the file.
    pub fn extend<'a>(&mut self, ids: impl ExactSizeIterator<Item = &'a str>) -> Result<(), ParquetIoError> {
        let batch = self.rows.next_in_step(ids.len())?;
        for (id, e) in ids.zip(batch) {
            if self.values.is_empty() {
                // Room for every row at once: a large buffer is never regrown.
                self.dim = e.embedding.len();
                self.values.reserve_exact(self.total * self.dim);
            }
            if e.chunk_id != id || e.embedding.len() != self.dim {
                return Err(ParquetIoError::OutOfStep { path: self.rows.path.clone() });
            }
            self.values.extend_from_slice(&e.embedding);
        }
        Ok(())
    }

    /// The matrix, once every row has been read.
    pub fn finish(self) -> Result<crate::Matrix, ParquetIoError> {
        self.rows.end_in_step()?;
        Ok(crate::Matrix::new(self.values, self.dim))
    }
}

/// One pass over every vector of `embeddings`, holding one batch: `f` gets each batch's rows
/// in chunk order, every row's id checked against the same row of `chunks` (as
/// [`VectorsInStep`] checks them, which holds every row).
pub fn for_each_vector_batch<E: From<ParquetIoError>>(
    chunks: &Path,
    embeddings: &Path,
    mut f: impl FnMut(&crate::vectors::VectorRows) -> Result<(), E>,
) -> Result<(), E> {
    use arrow::array::{Array, AsArray};
    #[derive(serde::Deserialize)]
    struct Id {
        chunk_id: String,
    }
    let out_of_step = || ParquetIoError::OutOfStep { path: embeddings.to_path_buf() };
    let mut ids = batches::<Id>(chunks, &["chunk_id"])?;
    let mut first = 0;
    for batch in record_batches(embeddings)? {
        let batch = batch?;
        // The chunks are the reference: a mismatch names the embeddings.
        let expected = ids.next_in_step(batch.num_rows()).map_err(|_| out_of_step())?;
        let got = batch.column_by_name("chunk_id").and_then(|c| c.as_string_opt::<i32>()).ok_or_else(out_of_step)?;
        if expected.iter().zip(got.iter()).any(|(e, g)| g != Some(e.chunk_id.as_str())) {
            return Err(out_of_step().into());
        }
        let list = batch.column_by_name("embedding").and_then(|c| c.as_fixed_size_list_opt()).ok_or_else(out_of_step)?;
        let values = list.values().as_primitive_opt::<arrow::datatypes::Float32Type>().ok_or_else(out_of_step)?.values();
        let (dim, rows) = (list.value_length() as usize, list.len());
        if dim == 0 || rows == 0 {
            continue;
        }
        let start = list.value_offset_at(0);
        f(&crate::vectors::VectorRows::new(first, dim, &values[start..start + rows * dim]))?;
        first += rows;
    }
    ids.end_in_step().map_err(|_| out_of_step())?;
    Ok(())
}

/// Calls `f` on each record batch of `path` in order, so large files stream.
pub fn for_each_batch(
    path: &Path,
    mut f: impl FnMut(RecordBatch) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
) -> Result<(), ParquetIoError> {
    for batch in record_batches(path)? {
        f(batch?).map_err(read_error(path))?;
    }
    Ok(())
}

/// The record batches of `path` in order, undecoded (every column).
pub fn record_batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch, ParquetIoError>> + '_, ParquetIoError> {
    Ok(batch_reader(path, &[])?.map(move |batch| batch.map_err(|e| read_error(path)(e.into()))))
}

fn read_error(path: &Path) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> ParquetIoError + '_ {
    move |e| ParquetIoError::Read { path: path.to_path_buf(), source: e }
}

fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, ParquetIoError> {
    let file = File::open(path).map_err(|e| read_error(path)(e.into()))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_error(path)(e.into()))
}

fn batch_reader(path: &Path, columns: &[&str]) -> Result<ParquetRecordBatchReader, ParquetIoError> {
    projected(path, columns)?.build().map_err(|e| read_error(path)(e.into()))
}

/// A reader of `path` in batches of `BATCH_ROWS`, decoding only `columns` (all when empty).
fn projected(path: &Path, columns: &[&str]) -> Result<ParquetRecordBatchReaderBuilder<File>, ParquetIoError> {
    let wrap = read_error(path);
    let mut builder = open(path)?.with_batch_size(BATCH_ROWS);
    if !columns.is_empty() {
        let roots =
            columns.iter().map(|name| builder.schema().index_of(name).map_err(|e| wrap(e.into()))).collect::<Result<Vec<_>, _>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    Ok(builder)
}

/// Rows in `path`, from its footer.
pub fn num_rows(path: &Path) -> Result<u64, ParquetIoError> {
    Ok(open(path)?.metadata().file_metadata().num_rows() as u64)
}

/// The key-value metadata of a Parquet file's Arrow schema.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, ParquetIoError> {
    Ok(open(path)?.schema().metadata().clone().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::SelectionRecord;

    #[test]
    fn batches_of_any_sizes_give_the_bytes_of_write_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = rows(2 * ROW_GROUP_ROWS + 5);
        let (whole, joined) = (dir.path().join("whole.parquet"), dir.path().join("joined.parquet"));
        write_rows(&whole, &SelectionRecord::fields(), &all, &[]).expect("write");
        let mut writer = BatchWriter::create(&joined, &SelectionRecord::fields(), &[]).expect("create");
        let mut start = 0usize;
        for size in [1, 7000, ROW_GROUP_ROWS + 100, 0, 9000].into_iter().chain(std::iter::once(usize::MAX)) {
            let end = start.saturating_add(size).min(all.len());
            writer.push(serde_arrow::to_record_batch(&SelectionRecord::fields(), &&all[start..end]).expect("batch")).expect("push");
            start = end;
        }
        assert_eq!(writer.rows(), all.len() as u64);
        writer.close().expect("close");
        assert_eq!(std::fs::read(&whole).expect("read"), std::fs::read(&joined).expect("read"));
    }

    #[test]
    fn a_range_of_rows_reads_those_rows_across_row_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = rows(2 * ROW_GROUP_ROWS + 5);
        let path = dir.path().join("rows.parquet");
        write_rows(&path, &SelectionRecord::fields(), &all, &[]).expect("write");
        let ids = |range: std::ops::Range<u64>| -> Vec<String> {
            let batches = batches_in::<SelectionRecord>(&path, &[], range).expect("open");
            batches.flat_map(|b| b.expect("batch")).map(|r| r.passage_id).collect()
        };
        let n = all.len() as u64;
        for range in [0..n, 3..7, (ROW_GROUP_ROWS as u64 - 2)..(2 * ROW_GROUP_ROWS as u64 + 1), (n - 5)..n, 10..10] {
            let expected: Vec<String> = all[range.start as usize..range.end as usize].iter().map(|r| r.passage_id.clone()).collect();
            assert_eq!(ids(range.clone()), expected, "{range:?}");
        }
        assert!(batches_in::<SelectionRecord>(&path, &[], 0..n + 1).is_err(), "rows past the end");
    }

    #[test]
    fn rows_written_for_a_merge_read_back_the_same_from_small_plain_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = rows(ROW_GROUP_ROWS + 5);
        let path = dir.path().join("merge.parquet");
        write_rows_for_merge(&path, &SelectionRecord::fields(), &all).expect("write");
        let read: Vec<SelectionRecord> = super::rows(&path, &[]).expect("open").collect::<Result<_, _>>().expect("rows");
        assert_eq!(read, all);
        let metadata = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open")).expect("reader").metadata().clone();
        let ids = metadata.row_group(0).column(0);
        assert!(!ids.encodings().any(|e| e == parquet::basic::Encoding::RLE_DICTIONARY), "no dictionary");
        assert!(ids.dictionary_page_offset().is_none());
    }

    fn rows(n: usize) -> Vec<SelectionRecord> {
        (0..n).map(|i| SelectionRecord { passage_id: format!("doc#p{i}"), selected: i % 3 == 0, random: i % 2 == 0 }).collect()
    }

    #[test]
    fn rows_pushed_one_at_a_time_give_the_bytes_of_write_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = rows(2 * ROW_GROUP_ROWS + 5);
        let (whole, pushed) = (dir.path().join("whole.parquet"), dir.path().join("pushed.parquet"));
        write_rows(&whole, &SelectionRecord::fields(), &all, &[]).expect("write");
        let mut writer = RowWriter::create(&pushed, &SelectionRecord::fields(), &[]).expect("create");
        for r in all.iter().cloned() {
            writer.push(r).expect("push");
        }
        assert_eq!(writer.rows(), all.len() as u64);
        writer.close().expect("close");
        assert_eq!(std::fs::read(&whole).expect("read"), std::fs::read(&pushed).expect("read"));
        assert_eq!(num_rows(&pushed).expect("rows"), all.len() as u64);
    }

    #[test]
    fn files_are_read_in_step_by_column_and_a_shorter_one_is_named() {
        #[derive(serde::Deserialize)]
        struct Id {
            passage_id: String,
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (long, short) = (dir.path().join("long.parquet"), dir.path().join("short.parquet"));
        write_rows(&long, &SelectionRecord::fields(), &rows(ROW_GROUP_ROWS + 3), &[]).expect("write");
        write_rows(&short, &SelectionRecord::fields(), &rows(ROW_GROUP_ROWS), &[]).expect("write");
        let mut other = batches::<SelectionRecord>(&short, &[]).expect("open");
        let mut seen = 0;
        let mut failure = None;
        for batch in batches::<Id>(&long, &["passage_id"]).expect("open") {
            let batch = batch.expect("batch");
            match other.next_in_step(batch.len()) {
                Ok(same) => assert!(batch.iter().zip(&same).all(|(a, b)| a.passage_id == b.passage_id)),
                Err(e) => failure = Some(e.to_string()),
            }
            seen += batch.len();
        }
        assert_eq!(seen, ROW_GROUP_ROWS + 3);
        let failure = failure.expect("the shorter file is out of step");
        assert!(failure.contains("short.parquet") && failure.contains("does not line up"), "{failure}");
        assert!(batches::<Id>(&long, &["no_such_column"]).is_err());
    }
}
