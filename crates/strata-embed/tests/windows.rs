//! The embed stage reads its chunks a window at a time: how the corpus is cut into windows
//! must change neither the vectors nor what the manifest says was embedded.

mod common;

use serde_json::json;
use strata_core::manifest::Manifest;
use strata_core::records::ChunkRecord;
use strata_core::rundir::{EMBEDDINGS, WORK_CHUNKS};
use strata_core::stage::run_stage;
use strata_core::{parquet_io, NoProgress, RunDir};
use strata_embed::{EmbedConfig, EmbedStage, ModelVariant};

fn chunks() -> Vec<ChunkRecord> {
    let texts = [
        "heart failure and its treatment",
        "kidney stones",
        "heart failure and its treatment",
        "asthma in children",
        "kidney stones",
        "type 2 diabetes",
        "heart failure and its treatment",
    ];
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| ChunkRecord {
            chunk_id: format!("doc#{i}"),
            doc_id: "doc".into(),
            source: "doc.md".into(),
            ordinal: i as u32,
            heading_path: vec!["Medicine".into()],
            text: t.to_string(),
            n_tokens: 5,
            byte_start: 0,
            byte_end: t.len() as u64,
            content_hash: strata_core::hash::text_hash(t),
        })
        .collect()
}

#[test]
fn windows_change_neither_the_vectors_nor_the_counts() {
    let mut runs = Vec::new();
    for window_chunks in [1, 3, strata_embed::WINDOW_CHUNKS] {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        parquet_io::write_rows(&run.path(WORK_CHUNKS), &ChunkRecord::fields(), &chunks(), &[]).expect("chunks");
        let stage = EmbedStage {
            config: EmbedConfig { model: ModelVariant::Static, ..EmbedConfig::default() },
            files: common::files(),
            threads: 1,
            cache_dir: None,
            window_chunks,
        };
        let mut manifest = Manifest::new(json!({}));
        run_stage(&run, &mut manifest, &stage, &NoProgress, true).expect("embed");
        let record = &manifest.stages["embed"];
        let counts = ["distinct_texts", "embedded_texts", "cached_texts", "tokens_real"].map(|k| record.extra[k].clone());
        runs.push((std::fs::read(run.path(EMBEDDINGS)).expect("embeddings"), counts, record.rows_out));
    }
    assert_eq!(runs[0].1, [json!(4), json!(4), json!(0), runs[2].1[3].clone()]);
    assert_eq!(runs[0].2, 7);
    assert!(runs.iter().all(|r| r == &runs[0]), "windows changed the output");
}
