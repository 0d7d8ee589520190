//! The selection stage end to end on a small run directory written here: it reads the chunk
//! stage's corpus total from the manifest, the assignments and the vectors, and writes one
//! selection row per chunk, within the budget, eligible chunks only, every leaf covered.

use serde_json::json;
use strata_core::manifest::{Manifest, StageRun};
use strata_core::parquet_io::{read_rows, write_rows};
use strata_core::records::{AssignmentRecord, ChunkRecord, EmbeddingRecord, SelectionRecord};
use strata_core::rundir::{EMBEDDINGS, WORK_ASSIGNMENTS, WORK_CHUNKS, WORK_SELECTION};
use strata_core::stage::run_stage;
use strata_core::summary::ChunkSummary;
use strata_core::{NoProgress, RunDir, StageSummary};
use strata_select::{SelectConfig, SelectStage};

/// (leaf, tokens, duplicate, vector angle in degrees) of each chunk.
const CHUNKS: [(u32, u32, bool, f32); 8] = [
    (1, 100, false, 0.0),
    (1, 100, false, 10.0),
    (1, 20, false, 20.0), // a crumb: under min_chunk_tokens
    (2, 100, false, 90.0),
    (2, 100, true, 91.0), // marked a near-duplicate by the taxonomy
    (2, 100, false, 120.0),
    (3, 100, false, 200.0),
    (3, 100, false, 230.0),
];

fn write_run(dir: &std::path::Path) -> (RunDir, Manifest) {
    let run = RunDir::new(dir);
    let id = |i: usize| format!("doc#{i}");
    let chunks: Vec<ChunkRecord> = CHUNKS
        .iter()
        .enumerate()
        .map(|(i, &(_, n_tokens, _, _))| ChunkRecord {
            chunk_id: id(i),
            doc_id: "doc".into(),
            source: "doc.md".into(),
            ordinal: i as u32,
            heading_path: vec![],
            text: format!("chunk {i}"),
            n_tokens,
            byte_start: 0,
            byte_end: 1,
            content_hash: format!("{i:016x}"),
        })
        .collect();
    let vectors: Vec<EmbeddingRecord> = CHUNKS
        .iter()
        .enumerate()
        .map(|(i, c)| EmbeddingRecord { chunk_id: id(i), embedding: vec![c.3.to_radians().cos(), c.3.to_radians().sin()] })
        .collect();
    let assignments: Vec<AssignmentRecord> = CHUNKS
        .iter()
        .enumerate()
        .map(|(i, c)| AssignmentRecord { chunk_id: id(i), node_id: c.0, duplicate_of: c.2.then(|| id(i - 1)) })
        .collect();
    std::fs::create_dir_all(dir.join("work")).expect("work dir");
    write_rows(&run.path(WORK_CHUNKS), &ChunkRecord::fields(), &chunks, &[]).expect("chunks");
    write_rows(&run.path(EMBEDDINGS), &EmbeddingRecord::fields(2), &vectors, &[]).expect("embeddings");
    write_rows(&run.path(WORK_ASSIGNMENTS), &AssignmentRecord::fields(), &assignments, &[]).expect("assignments");
    let mut manifest = Manifest::new(json!({}));
    let corpus_tokens = CHUNKS.iter().map(|c| c.1 as u64).sum();
    let chunk = ChunkSummary { corpus_tokens, documents: 1, files: 1, ..Default::default() };
    manifest.stages.insert(StageRun { rows_out: CHUNKS.len() as u64, ..Default::default() }, StageSummary::Chunk(chunk));
    (run, manifest)
}

#[test]
fn selects_within_the_budget_one_per_leaf_and_eligible_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, mut manifest) = write_run(dir.path());
    // 720 corpus tokens; 0.5 gives 360: room for three chunks of 100, one per leaf.
    let stage = SelectStage { config: SelectConfig { budget: 0.5, ..SelectConfig::default() }, seed: 42 };
    run_stage(&run, &mut manifest, &stage, &NoProgress, false).expect("select runs");

    let rows: Vec<SelectionRecord> = read_rows(&run.path(WORK_SELECTION)).expect("selection");
    assert_eq!(rows.iter().map(|r| r.chunk_id.as_str()).collect::<Vec<_>>(), (0..8).map(|i| format!("doc#{i}")).collect::<Vec<_>>());
    let chosen: Vec<usize> = rows.iter().enumerate().filter(|(_, r)| r.selected).map(|(i, _)| i).collect();
    assert!(!chosen.contains(&2) && !chosen.contains(&4), "a crumb or a duplicate was taken: {chosen:?}");
    let leaves: std::collections::BTreeSet<u32> = chosen.iter().map(|&i| CHUNKS[i].0).collect();
    assert_eq!(leaves.into_iter().collect::<Vec<_>>(), vec![1, 2, 3], "every leaf covered");
    assert_eq!(chosen.len(), 3);

    let s = &manifest.stages.select.as_ref().expect("recorded").summary;
    assert_eq!((s.corpus_tokens, s.budget_tokens, s.selected_tokens, s.selected_chunks), (720, 360, 300, 3));
    assert_eq!((s.eligible_chunks, s.leaves, s.leaves_covered), (6, 3, 3));
}

#[test]
fn without_the_chunk_stage_record_it_names_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, _) = write_run(dir.path());
    let mut empty = Manifest::new(json!({}));
    let stage = SelectStage { config: SelectConfig::default(), seed: 1 };
    let err = run_stage(&run, &mut empty, &stage, &NoProgress, false).expect_err("no corpus total");
    let chain: Vec<String> = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source()).map(|e| e.to_string()).collect();
    assert!(chain.iter().any(|m| m.contains("manifest.json") && m.contains("chunk stage")), "{chain:?}");
}
