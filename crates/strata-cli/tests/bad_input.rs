//! Bad input, each on a small corpus made here: either a clear error that names the file (and
//! line) with a non-zero exit and no output, or, for files that are not documents, a warning
//! and an entry in manifest.json `skipped` (an error under --strict). Counts always add up.

mod common;

use common::*;
use strata_core::parquet_io::{read_rows, write_rows};
use strata_core::records::{AssignmentRecord, ChunkRecord, DocumentRecord, EmbeddingRecord, PassageAssignment, PublishedChunk};

/// The first bytes of a PNG image (its header holds NUL bytes).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0";

#[test]
fn an_empty_corpus_folder_is_an_error() {
    let f = Fixture::new();
    let o = f.strata("run", &[]);
    f.fails_naming(&o, 1, &["corpus", "holds no readable document"]);
}

#[test]
fn files_that_are_not_documents_are_skipped_listed_and_counted() {
    let f = Fixture::new();
    f.demo_docs(2);
    f.file("images/photo.png", PNG);
    f.file("scan.txt", [b"%PDF-1.4\n".as_slice(), &[0, 1, 2, 0, 255]].concat());
    f.file("empty.md", "");
    f.file("table.csv", "a,b\n1,2\n");
    f.file("records.jsonl", "{\"id\": \"r1\", \"text\": \"A short record about the kidneys and their filtration of the blood.\"}\n\n{\"id\": \"r2\", \"text\": \"\"}\n");
    let o = f.strata("chunk", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["photo.png", "scan.txt", "empty.md", "table.csv"] {
        assert!(stderr(&o).contains(name), "no warning names {name}: {}", stderr(&o));
    }

    let m = f.manifest();
    let skipped: Vec<(&str, &str)> = m["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| (s["path"].as_str().expect("path"), s["reason"].as_str().expect("reason")))
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("empty.md", "empty file"),
            ("images/photo.png", "unsupported file type `.png`"),
            ("scan.txt", "binary content (NUL bytes), not text"),
            ("table.csv", "unsupported file type `.csv`"),
        ]
    );
    // Files read + files skipped = files seen; chunks = the sum of every document's chunks.
    let inputs = m["inputs"].as_array().expect("inputs").len();
    assert_eq!(inputs + skipped.len(), files_under(&f.corpus).len());
    let chunk = &m["stages"]["chunk"];
    assert_eq!(chunk["files"].as_u64(), Some(inputs as u64));
    let docs: Vec<DocumentRecord> = read_rows(&f.out.join("work/documents.parquet")).expect("documents");
    let chunks: Vec<ChunkRecord> = read_rows(&f.out.join("work/chunks.parquet")).expect("chunks");
    assert_eq!(docs.len(), 4, "two Markdown files and two JSONL records");
    assert_eq!(chunk["documents"].as_u64(), Some(4));
    assert_eq!(chunk["documents_without_chunks"].as_u64(), Some(1), "the record with empty text");
    assert_eq!(docs.iter().map(|d| d.n_chunks as usize).sum::<usize>(), chunks.len());
    assert_eq!(chunk["rows_out"].as_u64(), Some(chunks.len() as u64));

    // --strict turns the first skip into an error, before anything is written.
    let strict_out = f.tmp.path().join("strict");
    let o = f.strata("run", &["--strict", "--out", strict_out.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("empty.md") && stderr(&o).contains("--strict") && stderr(&o).contains("4 files skipped"), "{}", stderr(&o));
    assert!(!strict_out.exists());
}

#[test]
fn invalid_utf8_names_the_file_and_line() {
    let f = Fixture::new();
    f.demo_docs(1);
    f.file("latin1.txt", b"line one\nline two\ncaf\xe9 au lait\n");
    let o = f.strata("run", &[]);
    f.fails_naming(&o, 1, &["latin1.txt", "line 3", "invalid UTF-8", "convert the file to UTF-8"]);
}

#[test]
fn malformed_json_names_the_file_and_line_7() {
    let f = Fixture::new();
    let mut lines: Vec<String> = (1..=6).map(|i| format!("{{\"id\": \"d{i}\", \"text\": \"Record {i} on the lungs.\"}}")).collect();
    lines.push("{\"id\": \"d7\", \"text\": \"unterminated}".into());
    f.file("records.jsonl", lines.join("\n"));
    let o = f.strata("run", &[]);
    f.fails_naming(&o, 1, &["records.jsonl", "line 7", "malformed JSON", "column"]);
}

#[test]
fn jsonl_and_parquet_without_a_text_column_are_errors() {
    let f = Fixture::new();
    f.file("records.jsonl", "{\"id\": \"a\", \"body\": \"the text is under another name\"}\n");
    let o = f.strata("run", &[]);
    f.fails_naming(&o, 1, &["records.jsonl", "line 1", "no string field `text`"]);

    let f = Fixture::new();
    let row = DocumentRecord { doc_id: "a".into(), source: "s".into(), n_bytes: 1, n_chunks: 1, metadata: "{}".into() };
    write_rows(&f.corpus.join("table.parquet"), &DocumentRecord::fields(), &[row], &[]).expect("parquet");
    let o = f.strata("run", &[]);
    f.fails_naming(&o, 1, &["table.parquet", "no `text` column", "doc_id, source"]);
}

#[test]
fn duplicate_document_ids_are_an_error_naming_both_sources() {
    let f = Fixture::new();
    f.file("a.md", "# A\n\nThe first file called a.\n");
    f.file("a.txt", "The second file called a.\n");
    let o = f.strata("run", &[]);
    f.fails_naming(&o, 1, &["`a`", "a.md", "a.txt", "ids must be unique"]);

    let f = Fixture::new();
    f.file("records.jsonl", "{\"id\": 7, \"text\": \"one\"}\n{\"id\": 8, \"text\": \"two\"}\n{\"id\": \"7\", \"text\": \"three\"}\n");
    let o = f.strata("run", &[]);
    f.fails_naming(&o, 1, &["`7`", "records.jsonl:1", "records.jsonl:3"]);
}

#[test]
fn symlink_loops_are_skipped_not_followed() {
    let f = Fixture::new();
    f.demo_docs(1);
    std::fs::create_dir(f.corpus.join("sub")).expect("sub");
    std::os::unix::fs::symlink("..", f.corpus.join("sub/up")).expect("link");
    std::os::unix::fs::symlink("b.md", f.corpus.join("a.md")).expect("link");
    std::os::unix::fs::symlink("a.md", f.corpus.join("b.md")).expect("link");
    let o = f.strata("chunk", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = f.manifest();
    let reasons: Vec<String> = m["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| format!("{}: {}", s["path"].as_str().unwrap_or(""), s["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].starts_with("a.md: broken symbolic link or link loop"), "{reasons:?}");
    assert!(reasons[1].starts_with("b.md: broken symbolic link or link loop"), "{reasons:?}");
    assert_eq!(reasons[2], "sub/up: symbolic link to a folder; not followed");
    assert_eq!(m["inputs"].as_array().expect("inputs").len(), 1);
}

#[test]
fn an_unreadable_file_is_an_error() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.demo_docs(1);
    let locked = f.file("locked.md", "# Locked\n\nNobody may read this.\n");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    if std::fs::read(&locked).is_ok() {
        // Running as root, which reads through any permission bits. A link to /proc/self/mem
        // is unreadable even for root: reading its first page fails (EIO) in every process.
        std::fs::remove_file(&locked).expect("rm");
        std::os::unix::fs::symlink("/proc/self/mem", &locked).expect("link");
    }
    let o = f.strata("run", &[]);
    f.fails_naming(&o, 1, &["locked.md", "failed to read", "make it readable or move it out of the corpus"]);
}

#[test]
fn recipes_with_unknown_keys_or_impossible_values_are_usage_errors() {
    let cases = [
        ("budgte = 0.1\n", "budgte"),
        ("[taxonomy]\nfanout = 3\n", "fanout"),
        ("[select]\nbudget = 0\n", "select.budget = 0"),
        ("[taxonomy]\ndepth = -1\n", "depth"),
        ("[taxonomy]\ndepth = 0\n", "taxonomy.depth = 0"),
        ("[taxonomy]\nk_max = 1\n", "k_max"),
        ("[chunk]\nmax_tokens = 4\n", "chunk.max_tokens = 4"),
    ];
    for (extra, needle) in cases {
        let f = Fixture::with_recipe(extra);
        f.demo_docs(1);
        let o = f.strata("run", &[]);
        f.fails_naming(&o, 2, &["recipe.toml", needle]);
    }
    let f = Fixture::new();
    f.demo_docs(1);
    let o = f.strata("run", &["--budget", "0"]);
    f.fails_naming(&o, 2, &["budget"]);
}

#[test]
fn a_target_tokenizer_that_is_no_tokenizer_fails_the_chunk_stage_naming_it() {
    let f = Fixture::new();
    f.demo_docs(1);
    let bad = f.tmp.path().join("not-a-tokenizer.json");
    std::fs::write(&bad, "{\"vocab\": 3}").expect("write");
    let o = f.strata("run", &["--target-tokenizer", bad.to_str().expect("utf-8")]);
    f.fails_naming(&o, 1, &["stage `chunk` failed", "not-a-tokenizer.json"]);
}

#[test]
fn a_run_directory_that_cannot_be_written_is_an_error_naming_it() {
    let f = Fixture::new();
    f.demo_docs(1);
    let plain = f.tmp.path().join("plain-file");
    std::fs::write(&plain, "not a folder").expect("write");
    let under_file = plain.join("run");
    for out in [under_file.to_str().expect("utf-8"), "/proc/strata-run"] {
        let o = f.strata("run", &["--out", out]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(out) && stderr(&o).contains("run directory"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read_to_string(&plain).expect("read"), "not a folder");
}

#[test]
fn ids_and_names_that_look_like_paths_stay_inside_the_run_directory() {
    let f = Fixture::new();
    f.demo_docs(4);
    let escape = f.tmp.path().join("escaped");
    let ids = ["../../escaped", "/tmp/strata-absolute", "a/../../b"];
    let text = std::fs::read_to_string(repo().join("fixtures/medicine/neurology-epilepsy.md")).expect("fixture");
    let records: Vec<String> = ids.iter().map(|id| serde_json::json!({"id": id, "text": text.replace("epilep", id)}).to_string()).collect();
    f.file("records.jsonl", records.join("\n"));
    f.file("...md", "# Dots\n\nA file whose name is three dots and an extension, so its id is two dots.\n");
    let o = f.strata("run", &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    let corpus = files_under(&f.corpus);
    let everything = files_under(f.tmp.path());
    let outside: Vec<&String> =
        everything.iter().filter(|p| !p.starts_with("out/") && !p.starts_with("corpus/") && *p != "recipe.toml").collect();
    assert!(outside.is_empty(), "files outside the run directory: {outside:?}");
    assert_eq!(everything.iter().filter(|p| p.starts_with("corpus/")).count(), corpus.len());
    assert!(!escape.exists() && !std::path::Path::new("/tmp/strata-absolute").exists());
    let chunks: Vec<PublishedChunk> = read_rows(&f.out.join("chunks.parquet")).expect("chunks");
    for id in ids.iter().chain(&[".."]) {
        assert!(chunks.iter().any(|c| c.doc_id == *id), "doc id {id} lost");
    }
}

#[test]
fn a_stage_input_that_does_not_line_up_with_the_chunks_is_an_error_naming_it() {
    let f = Fixture::with_recipe("[embed]\nmodel = \"static\"\n");
    f.demo_docs(3);
    let o = f.strata("run", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fails = |stage: &str, file: &str| {
        let before = std::fs::read(f.out.join("work/selection.parquet")).expect("selection");
        let o = f.strata(stage, &["--force"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(file) && stderr(&o).contains("does not line up"), "{}", stderr(&o));
        assert_eq!(std::fs::read(f.out.join("work/selection.parquet")).expect("selection"), before, "a failed stage changed outputs");
    };

    // Stages read their inputs batch by batch alongside the chunks: a file one row short
    // (a stage's output from another corpus, say) is named, not silently misaligned.
    let assignments = f.out.join("work/assignments.parquet");
    let mut rows: Vec<AssignmentRecord> = read_rows(&assignments).expect("assignments");
    rows.pop();
    write_rows(&assignments, &AssignmentRecord::fields(), &rows, &[]).expect("write");
    fails("emit", "work/assignments.parquet");
    let placed = f.out.join("work/passage_assignments.parquet");
    let mut rows: Vec<PassageAssignment> = read_rows(&placed).expect("passage assignments");
    rows.pop();
    write_rows(&placed, &PassageAssignment::fields(), &rows, &[]).expect("write");
    fails("select", "passage_assignments.parquet");

    let embeddings = f.out.join("embeddings.parquet");
    let mut rows: Vec<EmbeddingRecord> = read_rows(&embeddings).expect("embeddings");
    let dim = rows[0].embedding.len();
    rows.pop();
    write_rows(&embeddings, &EmbeddingRecord::fields(dim), &rows, &[]).expect("write");
    fails("taxonomy", "embeddings.parquet");
}
