//! The embed stage reads its chunks a window at a time: how the corpus is cut into windows
//! must change neither the vectors nor what the manifest says was embedded.

mod common;

use serde_json::json;
use strata_core::manifest::Manifest;
use strata_core::records::{ChunkRecord, EmbeddingRecord};
use strata_core::rundir::{EMBEDDINGS, WORK_CHUNKS};
use strata_core::stage::run_stage;
use strata_core::{parquet_io, NoProgress, RunDir};
use strata_embed::{EmbedConfig, EmbedStage, ModelVariant, StaticEmbedder};

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
            passage_id: format!("doc#p{i}"),
        })
        .collect()
}

/// Every window size gives each chunk the vector the static embedder gives its model input
/// on its own, and the manifest counts each distinct input once.
#[test]
fn windows_change_neither_the_vectors_nor_the_counts() {
    let chunks = chunks();
    let embedder = StaticEmbedder::load(&common::files()).expect("static model");
    let expected: Vec<(Vec<f32>, usize)> =
        chunks.iter().map(|c| embedder.embed_one(&strata_embed::model_input(c, true)).expect("embed")).collect();
    let distinct_tokens: u64 = [0, 1, 3, 5].iter().map(|&i| expected[i].1 as u64).sum();
    for window_chunks in [1, 3, strata_embed::WINDOW_CHUNKS] {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        parquet_io::write_rows(&run.path(WORK_CHUNKS), &ChunkRecord::fields(), &chunks, &[]).expect("chunks");
        let stage = EmbedStage {
            config: EmbedConfig { model: ModelVariant::Static, ..EmbedConfig::default() },
            files: common::files(),
            threads: 1,
            cache_dir: None,
            window_chunks,
        };
        let mut manifest = Manifest::new(json!({}));
        run_stage(&run, &mut manifest, &stage, &NoProgress, true).expect("embed");
        let record = manifest.stages.embed.as_ref().expect("embed recorded");
        let s = &record.summary;
        assert_eq!(
            (s.distinct_texts, s.embedded_texts, s.cached_texts, s.tokens_real),
            (4, 4, 0, distinct_tokens),
            "window {window_chunks}"
        );
        assert_eq!(record.run.rows_out, 7);
        let rows: Vec<EmbeddingRecord> = parquet_io::read_rows(&run.path(EMBEDDINGS)).expect("embeddings");
        for (row, (chunk, (vector, _))) in rows.iter().zip(chunks.iter().zip(&expected)) {
            assert_eq!((&row.chunk_id, &row.embedding), (&chunk.chunk_id, vector), "window {window_chunks}");
        }
    }
}
