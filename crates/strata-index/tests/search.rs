//! The index stage over a few published chunks, their vectors and a taxonomy written here,
//! and search over it: the chunk that holds the query's words (BM25) or is nearest the
//! query's vector (dense) ranks first, hybrid fuses the two, a subtree restricts the hits in
//! every mode, an unknown or bad subtree is refused by name, and the dense files say which
//! model made the vectors.

use serde_json::json;
use strata_core::manifest::Manifest;
use strata_core::parquet_io::write_rows;
use strata_core::records::{EmbeddingRecord, PublishedChunk, TaxonomyNode};
use strata_core::rundir::{CHUNKS, EMBEDDINGS, TAXONOMY};
use strata_core::stage::run_stage;
use strata_core::{NoProgress, RunDir};
use strata_index::{IndexError, IndexStage, Mode, Retriever, Searcher};

/// The taxonomy: root 0; Cardiology 1 {Heart failure 2, Arrhythmias 3}; Infections 4
/// {Antibiotics 5, Vaccines 6}.
fn nodes() -> Vec<TaxonomyNode> {
    let node = |id: u32, parent: Option<u32>, path: &[&str]| TaxonomyNode {
        node_id: id,
        parent_id: parent,
        depth: path.len() as u8,
        label: path.last().copied().unwrap_or("medicine").into(),
        path: path.iter().map(|s| s.to_string()).collect(),
        n_chunks: 1,
        n_tokens: 1,
        ..Default::default()
    };
    vec![
        node(0, None, &[]),
        node(1, Some(0), &["Cardiology"]),
        node(2, Some(1), &["Cardiology", "Heart failure"]),
        node(3, Some(1), &["Cardiology", "Arrhythmias"]),
        node(4, Some(0), &["Infections"]),
        node(5, Some(4), &["Infections", "Antibiotics"]),
        node(6, Some(4), &["Infections", "Vaccines"]),
    ]
}

fn chunk(i: u32, node_id: u32, path: &[&str], text: &str) -> PublishedChunk {
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
        node_id,
        taxonomy_path: path.iter().map(|s| s.to_string()).collect(),
        duplicate_of: None,
        selected: false,
        passage_id: format!("doc{i}#p0"),
    }
}

fn indexed_run(dir: &std::path::Path) -> RunDir {
    let run = RunDir::new(dir);
    let chunks = [
        chunk(0, 2, &["Cardiology", "Heart failure"], "Diuretics relieve fluid overload in heart failure."),
        chunk(1, 3, &["Cardiology", "Arrhythmias"], "Atrial fibrillation is treated with anticoagulants and rate control."),
        chunk(2, 5, &["Infections", "Antibiotics"], "Penicillin resistance makes some infections hard to treat."),
        chunk(3, 6, &["Infections", "Vaccines"], "Vaccines prevent infections; anticoagulants do not."),
    ];
    write_rows(&run.path(CHUNKS), &PublishedChunk::fields(), &chunks, &[]).expect("chunks");
    let vectors: Vec<EmbeddingRecord> =
        VECTORS.iter().enumerate().map(|(i, v)| EmbeddingRecord { chunk_id: format!("doc{i}#0"), embedding: v.to_vec() }).collect();
    let meta = [("model", "test-model".to_string()), ("variant", "static".to_string()), ("model_sha256", "abc".to_string())];
    write_rows(&run.path(EMBEDDINGS), &EmbeddingRecord::fields(3), &vectors, &meta).expect("embeddings");
    write_rows(&run.path(TAXONOMY), &TaxonomyNode::fields(false), &nodes(), &[]).expect("taxonomy");
    run_stage(&run, &mut Manifest::new(json!({})), &IndexStage { parts: None }, &NoProgress, false).expect("index stage");
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

/// Unit vectors: doc0 and doc1 along two axes, doc2 along the third, doc3 between 0 and 2.
const VECTORS: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.0, 0.8]];

#[test]
fn every_mode_ranks_the_known_chunk_first_within_any_subtree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = indexed_run(dir.path());
    let r = Retriever::open(run.root()).expect("open");
    assert_eq!(
        (r.dense.meta.model.as_str(), r.dense.meta.variant.as_str(), r.dense.meta.rows, r.dense.meta.dim),
        ("test-model", "static", 4, 3)
    );
    let first = |query: &str, vector: &[f32], mode: Mode, under: Option<&str>| -> Vec<String> {
        r.search(query, Some(vector), mode, under, 10).expect("search").into_iter().map(|h| h.chunk_id).collect()
    };
    // The words point at doc1, the vector at doc2: each mode finds its own answer first.
    assert_eq!(first("atrial fibrillation rate control", &VECTORS[2], Mode::Bm25, None)[0], "doc1#0");
    assert_eq!(first("atrial fibrillation rate control", &VECTORS[2], Mode::Dense, None), ["doc2#0", "doc3#0", "doc0#0", "doc1#0"]);
    // Hybrid: BM25 finds "anticoagulants" in doc1 and doc3 (in either order), dense ranks
    // doc2, doc3, doc0, doc1. Fused (k = 60): doc3 is in the top two of both, doc1 has BM25
    // and the last dense rank, doc2 and doc0 dense alone. Neither ranking alone gives this.
    assert_eq!(first("anticoagulants", &VECTORS[2], Mode::Hybrid, None), ["doc3#0", "doc1#0", "doc2#0", "doc0#0"]);
    // Within a subtree every mode keeps to it.
    for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
        let hits = first("anticoagulants", &VECTORS[2], mode, Some("/Cardiology"));
        assert!(!hits.is_empty() && hits.iter().all(|h| h == "doc0#0" || h == "doc1#0"), "{mode:?}: {hits:?}");
    }
    let err = r.search("fever", Some(&VECTORS[0]), Mode::Hybrid, Some("/Nope"), 3).expect_err("unknown subtree");
    assert!(matches!(err, IndexError::UnknownSubtree(_)) && err.to_string().contains("/Nope"), "{err}");
    assert!(matches!(r.search("fever", None, Mode::Dense, None, 3), Err(IndexError::NoVector("dense"))));
    assert!(matches!("routed".parse::<Mode>(), Err(IndexError::Mode(_))));
}

#[test]
fn a_missing_index_names_its_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Searcher::open(dir.path()).err().expect("no index");
    assert!(matches!(err, IndexError::Open { .. }));
    assert!(err.to_string().contains("index`"), "{err}");
}
