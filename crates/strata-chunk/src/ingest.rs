//! Reading a corpus: which files count, what each holds, and errors that name the file and line.

use crate::plan::ShardPlan;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
use strata_core::Shard;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the corpus `{0}` does not exist")]
    NotFound(PathBuf),
    #[error("the corpus `{corpus}` holds no readable document (supported: .txt, .md, .markdown, .jsonl, .parquet){skipped}")]
    Empty { corpus: PathBuf, skipped: Skipped },
    #[error("the corpus `{corpus}` produced no chunk: every document is empty")]
    NoText { corpus: PathBuf },
    #[error("failed to read `{path}`; make it readable or move it out of the corpus")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` line {line}: invalid UTF-8; convert the file to UTF-8")]
    Utf8 { path: PathBuf, line: usize },
    #[error("`{path}` line {line}: malformed JSON: {message}")]
    Json { path: PathBuf, line: usize, message: String },
    #[error("`{path}` line {line}: no string field `text` in this record")]
    JsonNoText { path: PathBuf, line: usize },
    #[error("`{path}`: no `text` column of strings (columns: {columns})")]
    ParquetNoText { path: PathBuf, columns: String },
    #[error("`{path}`: not a readable Parquet file")]
    Parquet {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("document id `{id}` appears twice: in `{first}` and in `{second}`; ids must be unique (rename a file or fix the `id` field)")]
    DuplicateId { id: String, first: String, second: String },
    #[error("`{path}` skipped ({reason}){more}, and --strict turns skips into errors")]
    Strict { path: PathBuf, reason: String, more: Skipped },
}

/// A count of skipped files in a message: nothing when zero.
#[derive(Debug)]
pub struct Skipped(pub usize);

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, "; {n} files skipped"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Text,
    Jsonl,
    Parquet,
}

/// A corpus file that will be read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorpusFile {
    /// Path relative to the corpus root (the file name when the corpus is one file).
    pub rel: String,
    #[serde(skip)]
    pub abs: PathBuf,
    pub kind: FileKind,
    pub bytes: u64,
    /// Modification time, nanoseconds since the epoch (how a shard plan recognises the file).
    pub modified_ns: u64,
    /// Empty until hashed (`scan_corpus` hashes; `list_corpus` leaves it to a shard plan).
    pub sha256: String,
}

/// The files of a corpus and those passed over, with the reason.
#[derive(Debug, Clone)]
pub struct CorpusScan {
    pub root: PathBuf,
    pub files: Vec<CorpusFile>,
    /// (path relative to the root, reason)
    pub skipped: Vec<(String, String)>,
}

/// One document: NFC-normalised text plus the extra fields of its record.
#[derive(Debug, Clone)]
pub struct Document {
    pub doc_id: String,
    pub source: String,
    pub text: String,
    pub metadata: Value,
}

/// Lists the corpus's files in a stable order, hashing each; files that cannot be documents
/// (binary, empty, unknown extension, links to folders) are skipped with a reason, or are an
/// error when `strict`.
pub fn scan_corpus(root: &Path, strict: bool) -> Result<CorpusScan, IngestError> {
    let mut scan = list_corpus(root, strict)?;
    for file in &mut scan.files {
        file.sha256 = strata_core::hash::file_sha256(&file.abs).map_err(|source| IngestError::Read { path: file.abs.clone(), source })?;
    }
    Ok(scan)
}

/// `scan_corpus` without the hashes: a shard takes them from its plan.
pub fn list_corpus(root: &Path, strict: bool) -> Result<CorpusScan, IngestError> {
    let meta = std::fs::metadata(root).map_err(|_| IngestError::NotFound(root.to_path_buf()))?;
    let mut scan = CorpusScan { root: root.to_path_buf(), files: Vec::new(), skipped: Vec::new() };
    if meta.is_file() {
        let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        consider(&mut scan, root, name)?;
    } else {
        walk(&mut scan, root, root)?;
    }
    if strict {
        if let Some((path, reason)) = scan.skipped.first() {
            return Err(IngestError::Strict { path: root.join(path), reason: reason.clone(), more: Skipped(scan.skipped.len()) });
        }
    }
    if scan.files.is_empty() {
        return Err(IngestError::Empty { corpus: root.to_path_buf(), skipped: Skipped(scan.skipped.len()) });
    }
    Ok(scan)
}

fn walk(scan: &mut CorpusScan, root: &Path, dir: &Path) -> Result<(), IngestError> {
    let read_err = |source| IngestError::Read { path: dir.to_path_buf(), source };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(read_err)?.collect::<Result<_, _>>().map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
        let file_type = entry.file_type().map_err(|source| IngestError::Read { path: path.clone(), source })?;
        // Links to files are read; links to folders are not followed (no loops, no escape).
        let target = if file_type.is_symlink() { std::fs::metadata(&path).map(|m| m.file_type()) } else { Ok(file_type) };
        match target {
            Ok(t) if t.is_file() => consider(scan, &path, rel)?,
            Ok(t) if t.is_dir() && !file_type.is_symlink() => walk(scan, root, &path)?,
            Ok(t) if t.is_dir() => scan.skipped.push((rel, "symbolic link to a folder; not followed".into())),
            Ok(_) => scan.skipped.push((rel, "not a regular file (pipe, socket or device)".into())),
            Err(e) => scan.skipped.push((rel, format!("broken symbolic link or link loop: {e}"))),
        }
    }
    Ok(())
}

fn consider(scan: &mut CorpusScan, path: &Path, rel: String) -> Result<(), IngestError> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    let kind = match ext.as_str() {
        "txt" | "md" | "markdown" => FileKind::Text,
        "jsonl" => FileKind::Jsonl,
        "parquet" => FileKind::Parquet,
        _ => {
            scan.skipped.push((rel, format!("unsupported file type `.{ext}`")));
            return Ok(());
        }
    };
    // Only the head is read here (for the binary check); the hash streams the file.
    let read_err = |source| IngestError::Read { path: path.to_path_buf(), source };
    let mut head = Vec::with_capacity(8192);
    std::fs::File::open(path).map_err(read_err)?.take(8192).read_to_end(&mut head).map_err(read_err)?;
    if head.is_empty() {
        scan.skipped.push((rel, "empty file".into()));
        return Ok(());
    }
    if kind != FileKind::Parquet && head.contains(&0) {
        scan.skipped.push((rel, "binary content (NUL bytes), not text".into()));
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let modified = meta.modified().map_err(read_err)?;
    let modified_ns = modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    scan.files.push(CorpusFile { rel, abs: path.to_path_buf(), kind, bytes: meta.len(), modified_ns, sha256: String::new() });
    Ok(())
}

impl CorpusScan {
    /// The corpus's size: its files' bytes, end to end in scan order, are what shards cut.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Each file with the offset of its first byte in the corpus's bytes end to end.
    pub fn files_at(&self) -> impl Iterator<Item = (&CorpusFile, u64)> {
        self.files.iter().scan(0, |at, file| {
            let start = *at;
            *at += file.bytes;
            Some((file, start))
        })
    }

    /// Calls `f` on every document of every file, in scan order, reading a JSONL file a line
    /// at a time and a Parquet file a batch at a time, so no file is ever held whole. Document
    /// ids must be unique (only ids and sources are remembered to check that).
    ///
    /// With a `shard` (and the plan of its count), only that shard's documents: the files'
    /// bytes, end to end in scan order, are cut into equal ranges, and a document belongs to
    /// the range its first byte lies in (a text file's first byte, a JSONL line's, a Parquet
    /// row group's first column chunk's). The shards of a count partition the documents, each
    /// reads only its own bytes (the plan says where its first JSONL line starts), and
    /// concatenated in shard order they are the corpus in scan order.
    pub fn for_each_document<E: From<IngestError>>(
        &self,
        shard: Option<(Shard, &ShardPlan)>,
        mut f: impl FnMut(Document) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut unique = |doc: Document| -> Result<(), E> {
            if let Some(first) = seen.get(&doc.doc_id) {
                return Err(IngestError::DuplicateId { id: doc.doc_id.clone(), first: first.clone(), second: doc.source.clone() }.into());
            }
            seen.insert(doc.doc_id.clone(), doc.source.clone());
            f(doc)
        };
        let total = self.total_bytes();
        let owned = shard.map_or(0..total, |(s, _)| s.range(total));
        for (file, file_start) in self.files_at() {
            let part = within(&owned, file_start, file.bytes);
            if part.is_empty() {
                continue;
            }
            match file.kind {
                FileKind::Text if part.start == 0 => unique(read_text(file)?)?,
                FileKind::Text => {}
                FileKind::Jsonl => {
                    let from = shard.map_or((0, 1), |(s, plan)| plan.line_start(&file.rel, s));
                    read_jsonl(file, from, part.end, &mut unique)?
                }
                FileKind::Parquet => read_parquet(file, part, &mut unique)?,
            }
        }
        Ok(())
    }
}

/// The part of `range` (offsets in the corpus's bytes end to end) that lies in the file of
/// `file_bytes` starting at `file_start`, in the file's own offsets.
pub fn within(range: &std::ops::Range<u64>, file_start: u64, file_bytes: u64) -> std::ops::Range<u64> {
    let local = |at: u64| at.saturating_sub(file_start).min(file_bytes);
    local(range.start)..local(range.end)
}

fn read_bytes(file: &CorpusFile) -> Result<Vec<u8>, IngestError> {
    std::fs::read(&file.abs).map_err(|source| IngestError::Read { path: file.abs.clone(), source })
}

/// The file's text without a leading byte-order mark; invalid UTF-8 is an error naming the line.
fn utf8(file: &CorpusFile, bytes: Vec<u8>) -> Result<String, IngestError> {
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..valid].iter().filter(|&&b| b == b'\n').count();
        IngestError::Utf8 { path: file.abs.clone(), line }
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..3);
    }
    Ok(text)
}

fn read_text(file: &CorpusFile) -> Result<Document, IngestError> {
    let text = utf8(file, read_bytes(file)?)?;
    let doc_id = file.rel.rsplit_once('.').map(|(stem, _)| stem).unwrap_or(&file.rel).to_string();
    Ok(Document { doc_id, source: file.rel.clone(), text: text.nfc().collect(), metadata: Value::Object(Map::new()) })
}

/// The lines of a JSONL file from `from` (the offset of a line start and its number) to the
/// last that starts before `end`.
fn read_jsonl<E: From<IngestError>>(
    file: &CorpusFile,
    from: (u64, usize),
    end: u64,
    emit: &mut impl FnMut(Document) -> Result<(), E>,
) -> Result<(), E> {
    let read_err = |source| IngestError::Read { path: file.abs.clone(), source };
    let mut handle = std::fs::File::open(&file.abs).map_err(read_err)?;
    handle.seek(std::io::SeekFrom::Start(from.0)).map_err(read_err)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, handle);
    let (mut offset, first_line) = from;
    let mut buf = Vec::new();
    for line_no in first_line.. {
        if offset >= end {
            break;
        }
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = std::str::from_utf8(&buf).map_err(|_| IngestError::Utf8 { path: file.abs.clone(), line: line_no })?;
        let line = if line_no == 1 { line.strip_prefix('\u{feff}').unwrap_or(line) } else { line };
        if line.trim().is_empty() {
            continue;
        }
        emit(json_document(file, line, line_no)?)?;
    }
    Ok(())
}

/// One JSONL record as a document; `line_no` names it in errors and in its source.
fn json_document(file: &CorpusFile, line: &str, line_no: usize) -> Result<Document, IngestError> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        // serde_json counts lines within this record: keep its column, not its line.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        IngestError::Json { path: file.abs.clone(), line: line_no, message: format!("{message} (column {})", e.column()) }
    })?;
    let Value::Object(mut record) = value else {
        return Err(IngestError::Json { path: file.abs.clone(), line: line_no, message: "expected a JSON object".into() });
    };
    let Some(Value::String(body)) = record.remove("text") else {
        return Err(IngestError::JsonNoText { path: file.abs.clone(), line: line_no });
    };
    let source = format!("{}:{}", file.rel, line_no);
    let doc_id = match record.remove("id") {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => source.clone(),
    };
    Ok(Document { doc_id, source, text: body.nfc().collect(), metadata: Value::Object(record) })
}

/// Rows of a Parquet file with a `text` column of strings; a null `text` is an empty document
/// (kept, so it is counted). Other string and integer columns become metadata, `id` the doc id.
/// Only the row groups whose data starts within `part` (byte offsets in the file) are read.
fn read_parquet<E: From<IngestError>>(
    file: &CorpusFile,
    part: Range<u64>,
    emit: &mut impl FnMut(Document) -> Result<(), E>,
) -> Result<(), E> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;
    let wrap = |e: Box<dyn std::error::Error + Send + Sync>| IngestError::Parquet { path: file.abs.clone(), source: e };
    let f = std::fs::File::open(&file.abs).map_err(|source| IngestError::Read { path: file.abs.clone(), source })?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| wrap(e.into()))?;
    let is_string = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    if !builder.schema().field_with_name("text").is_ok_and(|f| is_string(f.data_type())) {
        let columns = builder.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ");
        return Err(IngestError::ParquetNoText { path: file.abs.clone(), columns }.into());
    }
    let groups = builder.metadata().row_groups();
    let starts = |g: &parquet::file::metadata::RowGroupMetaData| g.columns().first().map_or(0, |c| c.byte_range().0);
    let owned: Vec<usize> = (0..groups.len()).filter(|&i| part.contains(&starts(&groups[i]))).collect();
    let Some(&first) = owned.first() else { return Ok(()) };
    let mut row = groups[..first].iter().map(|g| g.num_rows() as usize).sum::<usize>();
    let reader = builder.with_row_groups(owned).build().map_err(|e| wrap(e.into()))?;
    for batch in reader {
        let batch = batch.map_err(|e| wrap(e.into()))?;
        let mut columns = Vec::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            if is_string(field.data_type()) || field.data_type().is_integer() {
                columns.push((field.name().clone(), arrow::compute::cast(column, &DataType::Utf8).map_err(|e| wrap(e.into()))?));
            }
        }
        for i in 0..batch.num_rows() {
            let source = format!("{}#{}", file.rel, row);
            row += 1;
            let (mut doc_id, mut text, mut metadata) = (source.clone(), String::new(), Map::new());
            for (name, col) in &columns {
                let col = col.as_string::<i32>();
                if col.is_null(i) {
                    continue;
                }
                let value = col.value(i);
                match name.as_str() {
                    "text" => text = value.nfc().collect(),
                    "id" => doc_id = value.to_string(),
                    _ => {
                        metadata.insert(name.clone(), Value::String(value.to_string()));
                    }
                }
            }
            emit(Document { doc_id, source, text, metadata: Value::Object(metadata) })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents(root: &Path) -> Result<Vec<Document>, IngestError> {
        let mut docs = Vec::new();
        scan_corpus(root, false)?.for_each_document(None, |d| -> Result<(), IngestError> {
            docs.push(d);
            Ok(())
        })?;
        Ok(docs)
    }

    #[test]
    fn jsonl_is_read_a_line_at_a_time_with_bom_crlf_and_blank_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docs.jsonl");
        std::fs::write(&path, "\u{feff}{\"id\": 1, \"text\": \"one\"}\r\n\r\n{\"text\": \"two\", \"topic\": \"t\"}\r\n").expect("write");
        let docs = documents(&path).expect("read");
        assert_eq!(docs.iter().map(|d| (d.doc_id.as_str(), d.text.as_str())).collect::<Vec<_>>(), [("1", "one"), ("docs.jsonl:3", "two")]);
        assert_eq!(docs[1].metadata["topic"], "t");

        std::fs::write(&path, b"{\"text\": \"fine\"}\n{\"text\": \"fine too\"}\n{\"text\": \"caf\xe9\"}\n").expect("write");
        let err = documents(&path).expect_err("latin-1");
        assert!(matches!(err, IngestError::Utf8 { line: 3, .. }), "{err}");

        std::fs::write(&path, "{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"a\", \"text\": \"y\"}\n").expect("write");
        let err = documents(&path).expect_err("duplicate");
        assert!(err.to_string().contains("docs.jsonl:1") && err.to_string().contains("docs.jsonl:2"), "{err}");
    }

    /// A Parquet corpus file of `n` documents in row groups of two.
    fn write_parquet(path: &Path, n: usize) {
        use arrow::array::{ArrayRef, StringArray};
        let texts: Vec<String> = (0..n).map(|i| format!("parquet text {i}")).collect();
        let ids: Vec<String> = (0..n).map(|i| format!("pq{i}")).collect();
        let batch = arrow::record_batch::RecordBatch::try_from_iter([
            ("id", std::sync::Arc::new(StringArray::from(ids)) as ArrayRef),
            ("text", std::sync::Arc::new(StringArray::from(texts)) as ArrayRef),
        ])
        .expect("batch");
        let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(2)).build();
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).expect("create"), batch.schema(), Some(props))
            .expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
    }

    #[test]
    fn shards_partition_the_documents_in_scan_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.md"), "# A\n\nA text file.").expect("write");
        let lines: Vec<String> = (0..40).map(|i| format!("{{\"id\": \"j{i}\", \"text\": \"{}\"}}", "word ".repeat(i % 7 + 1))).collect();
        std::fs::write(dir.path().join("b.jsonl"), format!("\u{feff}{}\r\n\r\n", lines.join("\r\n\n"))).expect("write");
        write_parquet(&dir.path().join("c.parquet"), 9);
        std::fs::write(dir.path().join("d.txt"), "Last.").expect("write");
        let scan = scan_corpus(dir.path(), true).expect("scan");
        let read = |shard: Option<(Shard, &ShardPlan)>| {
            let mut docs = Vec::new();
            scan.for_each_document(shard, |d| -> Result<(), IngestError> {
                docs.push((d.doc_id, d.source));
                Ok(())
            })
            .expect("read");
            docs
        };
        let whole = read(None);
        assert_eq!(whole.len(), 1 + 40 + 9 + 1);
        assert_eq!(whole[1], ("j0".to_string(), "b.jsonl:1".to_string()));
        assert_eq!(whole[40], ("j39".to_string(), "b.jsonl:79".to_string()));
        for count in 1..=9 {
            let plan = ShardPlan::make(&scan, count).expect("plan");
            assert!(plan.files.iter().zip(&scan.files).all(|(p, f)| p.sha256 == f.sha256), "the plan hashes as the scan does");
            let joined: Vec<_> = Shard::all(count).flat_map(|s| read(Some((s, &plan)))).collect();
            assert_eq!(joined, whole, "{count} shards");
        }
    }
}
