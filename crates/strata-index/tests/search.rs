//! The index stage over a few published chunks written here, and BM25 search over it: the
//! chunk that holds the query's words ranks first, a subtree restricts the hits, a bad
//! subtree is refused by name.

use serde_json::json;
use strata_core::manifest::Manifest;
use strata_core::parquet_io::write_rows;
use strata_core::records::PublishedChunk;
use strata_core::rundir::CHUNKS;
use strata_core::stage::run_stage;
use strata_core::{NoProgress, RunDir};
use strata_index::{IndexError, IndexStage, Searcher};

fn chunk(i: u32, path: &[&str], text: &str) -> PublishedChunk {
    PublishedChunk {
        chunk_id: format!("doc{i}#0"),
        doc_id: format!("doc{i}"),
        source: format!("doc{i}.md"),
        ordinal: 0,
        heading_path: vec![format!("Document {i}")],
        text: text.into(),
        n_tokens: 10,
        byte_start: 0,
        byte_end: text.len() as u64,
        node_id: i + 2,
        taxonomy_path: path.iter().map(|s| s.to_string()).collect(),
        duplicate_of: None,
        selected: false,
        passage_id: format!("doc{i}#p0"),
    }
}

fn indexed_run(dir: &std::path::Path) -> RunDir {
    let run = RunDir::new(dir);
    let chunks = [
        chunk(0, &["Cardiology", "Heart failure"], "Diuretics relieve fluid overload in heart failure."),
        chunk(1, &["Cardiology", "Arrhythmias"], "Atrial fibrillation is treated with anticoagulants and rate control."),
        chunk(2, &["Infections", "Antibiotics"], "Penicillin resistance makes some infections hard to treat."),
        chunk(3, &["Infections", "Vaccines"], "Vaccines prevent infections; anticoagulants do not."),
    ];
    write_rows(&run.path(CHUNKS), &PublishedChunk::fields(), &chunks, &[]).expect("chunks");
    run_stage(&run, &mut Manifest::new(json!({})), &IndexStage, &NoProgress, false).expect("index stage");
    run
}

#[test]
fn the_chunk_with_the_words_ranks_first_and_subtrees_restrict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = indexed_run(dir.path());
    let searcher = Searcher::open(run.root()).expect("open");
    assert_eq!(searcher.num_docs(), 4);

    let hits = searcher.search("diuretics for heart failure", None, 3).expect("search");
    assert_eq!(hits[0].chunk_id, "doc0#0");
    assert_eq!(hits[0].taxonomy, "/Cardiology/Heart failure");
    assert_eq!(hits[0].node_id, 2);

    // "anticoagulants" is in a cardiology chunk and an infections chunk.
    let ids = |under| searcher.search("anticoagulants", under, 10).expect("search").into_iter().map(|h| h.chunk_id).collect::<Vec<_>>();
    let mut all = ids(None);
    all.sort();
    assert_eq!(all, ["doc1#0", "doc3#0"]);
    assert_eq!(ids(Some("/Cardiology")), ["doc1#0"]);
    assert_eq!(ids(Some("Infections/Vaccines")), ["doc3#0"]);
    assert!(ids(Some("/Cardiology/Heart failure")).is_empty());
    // Stemming: "infection" finds "infections".
    assert_eq!(searcher.search("infection", None, 10).expect("search").len(), 2);
}

#[test]
fn a_missing_index_names_its_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Searcher::open(dir.path()).err().expect("no index");
    assert!(matches!(err, IndexError::Open { .. }));
    assert!(err.to_string().contains("index`"), "{err}");
}
