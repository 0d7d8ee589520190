//! Reading a corpus: which files count, what each holds, and errors that name the file and line.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
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
    scan.files.push(CorpusFile {
        rel,
        abs: path.to_path_buf(),
        kind,
        bytes: std::fs::metadata(path).map_err(read_err)?.len(),
        sha256: strata_core::hash::file_sha256(path).map_err(read_err)?,
    });
    Ok(())
}

impl CorpusScan {
    /// Calls `f` on every document of every file, in scan order, reading a JSONL file a line
    /// at a time and a Parquet file a batch at a time, so no file is ever held whole. Document
    /// ids must be unique (only ids and sources are remembered to check that).
    pub fn for_each_document<E: From<IngestError>>(&self, mut f: impl FnMut(Document) -> Result<(), E>) -> Result<(), E> {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut unique = |doc: Document| -> Result<(), E> {
            if let Some(first) = seen.get(&doc.doc_id) {
                return Err(IngestError::DuplicateId { id: doc.doc_id.clone(), first: first.clone(), second: doc.source.clone() }.into());
            }
            seen.insert(doc.doc_id.clone(), doc.source.clone());
            f(doc)
        };
        for file in &self.files {
            match file.kind {
                FileKind::Text => unique(read_text(file)?)?,
                FileKind::Jsonl => read_jsonl(file, &mut unique)?,
                FileKind::Parquet => read_parquet(file, &mut unique)?,
            }
        }
        Ok(())
    }
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

fn read_jsonl<E: From<IngestError>>(file: &CorpusFile, emit: &mut impl FnMut(Document) -> Result<(), E>) -> Result<(), E> {
    let read_err = |source| IngestError::Read { path: file.abs.clone(), source };
    let mut reader = std::io::BufReader::new(std::fs::File::open(&file.abs).map_err(read_err)?);
    let mut buf = Vec::new();
    for line_no in 1.. {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(read_err)? == 0 {
            break;
        }
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
        let value: Value = serde_json::from_str(line).map_err(|e| {
            // serde_json counts lines within this record: keep its column, not its line.
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or_default();
            IngestError::Json { path: file.abs.clone(), line: line_no, message: format!("{message} (column {})", e.column()) }
        })?;
        let Value::Object(mut record) = value else {
            return Err(IngestError::Json { path: file.abs.clone(), line: line_no, message: "expected a JSON object".into() }.into());
        };
        let Some(Value::String(body)) = record.remove("text") else {
            return Err(IngestError::JsonNoText { path: file.abs.clone(), line: line_no }.into());
        };
        let source = format!("{}:{}", file.rel, line_no);
        let doc_id = match record.remove("id") {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => source.clone(),
        };
        emit(Document { doc_id, source, text: body.nfc().collect(), metadata: Value::Object(record) })?;
    }
    Ok(())
}

/// Rows of a Parquet file with a `text` column of strings; a null `text` is an empty document
/// (kept, so it is counted). Other string and integer columns become metadata, `id` the doc id.
fn read_parquet<E: From<IngestError>>(file: &CorpusFile, emit: &mut impl FnMut(Document) -> Result<(), E>) -> Result<(), E> {
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
    let reader = builder.build().map_err(|e| wrap(e.into()))?;
    let mut row = 0usize;
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
        scan_corpus(root, false)?.for_each_document(|d| -> Result<(), IngestError> {
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
}
