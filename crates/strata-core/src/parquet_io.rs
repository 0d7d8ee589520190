//! Reading and writing the row types of [`crate::records`] as Parquet, deterministically
//! (same rows, same bytes): fixed writer settings, no timestamps.

use arrow::datatypes::{FieldRef, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per row group: bounds the memory a reader needs per batch.
const ROW_GROUP_ROWS: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ParquetIoError {
    #[error("failed to write `{path}`")]
    Write { path: PathBuf, #[source] source: Box<dyn std::error::Error + Send + Sync> },
    #[error("failed to read `{path}` (is the run directory from an older or interrupted run?)")]
    Read { path: PathBuf, #[source] source: Box<dyn std::error::Error + Send + Sync> },
}

/// Writes `rows` with the schema `fields` and key-value `metadata` to `path`.
pub fn write_rows<T: Serialize>(
    path: &Path,
    fields: &[FieldRef],
    rows: &[T],
    metadata: &[(&str, String)],
) -> Result<(), ParquetIoError> {
    write_row_groups(path, fields, rows.len(), |range| &rows[range], metadata)
}

/// Writes `n_rows` rows made a row group at a time by `group(range)`, so a stage need not
/// hold every row it writes. The bytes are those `write_rows` writes for the same rows.
pub fn write_row_groups<B: Serialize>(
    path: &Path,
    fields: &[FieldRef],
    n_rows: usize,
    mut group: impl FnMut(std::ops::Range<usize>) -> B,
    metadata: &[(&str, String)],
) -> Result<(), ParquetIoError> {
    let wrap = |e: Box<dyn std::error::Error + Send + Sync>| ParquetIoError::Write { path: path.to_path_buf(), source: e };
    let meta: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let schema = Arc::new(Schema::new(fields.to_vec()).with_metadata(meta));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| wrap(e.into()))?;
    }
    let file = File::create(path).map_err(|e| wrap(e.into()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("strata {}", crate::TOOL_VERSION))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| wrap(e.into()))?;
    for start in (0..n_rows).step_by(ROW_GROUP_ROWS) {
        let part = group(start..(start + ROW_GROUP_ROWS).min(n_rows));
        let batch = serde_arrow::to_record_batch(fields, &part).map_err(|e| wrap(e.into()))?;
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| wrap(e.into()))?;
        writer.write(&batch).map_err(|e| wrap(e.into()))?;
    }
    writer.close().map_err(|e| wrap(e.into()))?;
    Ok(())
}

/// Reads every row of `path` into `T`.
pub fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, ParquetIoError> {
    let mut rows = Vec::new();
    for_each_rows(path, |mut part: Vec<T>| {
        rows.append(&mut part);
        Ok(())
    })?;
    Ok(rows)
}

/// Calls `f` on the rows of each record batch of `path` in order, so a stage can keep only
/// what it needs of each row.
pub fn for_each_rows<T: DeserializeOwned>(
    path: &Path,
    mut f: impl FnMut(Vec<T>) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
) -> Result<(), ParquetIoError> {
    for_each_batch(path, |batch| f(serde_arrow::from_record_batch(&batch)?))
}

/// Calls `f` on each record batch of `path` in order, so large files stream.
pub fn for_each_batch(
    path: &Path,
    mut f: impl FnMut(RecordBatch) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
) -> Result<(), ParquetIoError> {
    let wrap = |e: Box<dyn std::error::Error + Send + Sync>| ParquetIoError::Read { path: path.to_path_buf(), source: e };
    let file = File::open(path).map_err(|e| wrap(e.into()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(ROW_GROUP_ROWS).build())
        .map_err(|e| wrap(e.into()))?;
    for batch in reader {
        f(batch.map_err(|e| wrap(e.into()))?).map_err(wrap)?;
    }
    Ok(())
}

/// The key-value metadata of a Parquet file's Arrow schema.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, ParquetIoError> {
    let wrap = |e: Box<dyn std::error::Error + Send + Sync>| ParquetIoError::Read { path: path.to_path_buf(), source: e };
    let file = File::open(path).map_err(|e| wrap(e.into()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| wrap(e.into()))?;
    Ok(builder.schema().metadata().into())
}
