//! The emit stage over a small run directory written here (a taxonomy of two branches, four
//! chunks, two selected) with a whitespace tokenizer written here too, so token counts are
//! word counts: textbook order, the chunk sample's layout, counts, the published chunks and
//! the LLaMA-Factory registry.

use serde_json::json;
use strata_core::manifest::Manifest;
use strata_core::parquet_io::{read_rows, write_rows};
use strata_core::records::{AssignmentRecord, ChunkRecord, PublishedChunk, Sample, SelectionRecord, TaxonomyNode};
use strata_core::rundir::{CHUNKS, DATASET_INFO, SCPT, SSFT, TAXONOMY, WORK_ASSIGNMENTS, WORK_CHUNKS, WORK_SELECTION};
use strata_core::stage::run_stage;
use strata_core::{NoProgress, RunDir};
use strata_emit::{EmitConfig, EmitStage};

/// A Hugging Face tokenizer that makes one token of every whitespace-separated word.
const WORD_TOKENIZER: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
"pre_tokenizer":{"type":"WhitespaceSplit"},"post_processor":null,"decoder":null,
"model":{"type":"WordLevel","vocab":{"[UNK]":0},"unk_token":"[UNK]"}}"#;

fn node(id: u32, parent: Option<u32>, depth: u8, path: &[&str]) -> TaxonomyNode {
    TaxonomyNode {
        node_id: id,
        parent_id: parent,
        depth,
        label: path.last().copied().unwrap_or("medicine").into(),
        keywords: vec![],
        path: path.iter().map(|s| s.to_string()).collect(),
        n_chunks: 1,
        n_tokens: 1,
        medoid_chunk_id: None,
    }
}

/// Chunks (leaf, selected): doc#0 in Heart failure (selected), doc#1 in Vaccines (selected),
/// doc#2 in Arrhythmias, doc#3 in Heart failure.
fn write_run(dir: &std::path::Path) -> (RunDir, EmitStage) {
    let run = RunDir::new(dir);
    let nodes = vec![
        node(0, None, 0, &[]),
        node(1, Some(0), 1, &["Cardiology"]),
        node(2, Some(1), 2, &["Cardiology", "Heart failure"]),
        node(3, Some(1), 2, &["Cardiology", "Arrhythmias"]),
        node(4, Some(0), 1, &["Infections"]),
        node(5, Some(4), 2, &["Infections", "Vaccines"]),
    ];
    let placed = [(2u32, true), (5, true), (3, false), (2, false)];
    let id = |i: usize| format!("doc#{i}");
    let chunks: Vec<ChunkRecord> = (0..4)
        .map(|i| ChunkRecord {
            chunk_id: id(i),
            doc_id: "doc".into(),
            source: "doc.md".into(),
            ordinal: i as u32,
            heading_path: vec!["Doc".into()],
            text: format!("passage number {i} about medicine"),
            n_tokens: 5,
            byte_start: 0,
            byte_end: 1,
            content_hash: format!("{i:016x}"),
        })
        .collect();
    let assignments: Vec<AssignmentRecord> =
        placed.iter().enumerate().map(|(i, p)| AssignmentRecord { chunk_id: id(i), node_id: p.0, duplicate_of: None }).collect();
    let selection: Vec<SelectionRecord> =
        placed.iter().enumerate().map(|(i, p)| SelectionRecord { chunk_id: id(i), selected: p.1 }).collect();
    std::fs::create_dir_all(dir.join("work")).expect("work");
    write_rows(&run.path(TAXONOMY), &TaxonomyNode::fields(), &nodes, &[]).expect("taxonomy");
    write_rows(&run.path(WORK_CHUNKS), &ChunkRecord::fields(), &chunks, &[]).expect("chunks");
    write_rows(&run.path(WORK_ASSIGNMENTS), &AssignmentRecord::fields(), &assignments, &[]).expect("assignments");
    write_rows(&run.path(WORK_SELECTION), &SelectionRecord::fields(), &selection, &[]).expect("selection");
    let tokenizer_path = dir.join("tokenizer.json");
    std::fs::write(&tokenizer_path, WORD_TOKENIZER).expect("tokenizer");
    (run, EmitStage { config: EmitConfig::default(), domain: "medicine".into(), seed: 42, tokenizer_path })
}

#[test]
fn samples_come_in_textbook_order_with_their_structure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, stage) = write_run(dir.path());
    let mut manifest = Manifest::new(json!({}));
    run_stage(&run, &mut manifest, &stage, &NoProgress, false).expect("emit runs");

    let scpt: Vec<Sample> = read_rows(&run.path(SCPT)).expect("scpt");
    let order: Vec<(&str, Option<&str>, u32)> = scpt.iter().map(|s| (s.kind.as_str(), s.chunk_id.as_deref(), s.node_id)).collect();
    assert_eq!(order, [("mindmap", None, 1), ("chunk", Some("doc#0"), 2), ("mindmap", None, 4), ("chunk", Some("doc#1"), 5)]);

    let heart = &scpt[1];
    assert_eq!(heart.response, "Heart failure\npassage number 0 about medicine");
    assert!(heart.prompt.contains("```\nCardiology\n├─ **Heart failure**\n└─ Arrhythmias\n```"), "{}", heart.prompt);
    assert_eq!(heart.text, format!("{}\n{}", heart.prompt, heart.response));
    assert_eq!(heart.n_tokens as usize, heart.text.split_whitespace().count());
    assert_eq!(heart.taxonomy_path, ["Cardiology", "Heart failure"]);
    assert_eq!(
        (heart.instruction.as_str(), heart.input.as_str(), heart.output.as_str()),
        (heart.prompt.as_str(), "", heart.response.as_str())
    );
    assert_eq!(scpt[0].response, "```\nCardiology\n├─ Heart failure\n└─ Arrhythmias\n```");

    // SSFT: a locate sample per selected chunk, then outline and subtopics per inner node.
    let ssft: Vec<Sample> = read_rows(&run.path(SSFT)).expect("ssft");
    let kinds: Vec<(&str, u32)> = ssft.iter().map(|s| (s.kind.as_str(), s.node_id)).collect();
    assert_eq!(
        kinds,
        [
            ("locate", 2),
            ("locate", 5),
            ("outline", 0),
            ("subtopics", 0),
            ("outline", 1),
            ("subtopics", 1),
            ("outline", 4),
            ("subtopics", 4)
        ]
    );
    assert_eq!(ssft[0].output, "Cardiology > Heart failure");
    assert_eq!(ssft[5].output, "- Heart failure\n- Arrhythmias");
    // The root is the domain: its prompts name it once.
    assert_eq!(ssft[2].prompt, "Outline the structure of medicine as a mind map.");
    assert_eq!(ssft[3].prompt, "List the subtopics of medicine.");
    assert_eq!(ssft[4].prompt, "Outline the structure of Cardiology in medicine as a mind map.");

    let published: Vec<PublishedChunk> = read_rows(&run.path(CHUNKS)).expect("chunks");
    let placed: Vec<(u32, &[String], bool)> = published.iter().map(|c| (c.node_id, c.taxonomy_path.as_slice(), c.selected)).collect();
    assert_eq!(placed[2], (3, &["Cardiology".to_string(), "Arrhythmias".to_string()][..], false));
    assert_eq!(published.len(), 4);

    let summary = &manifest.stages.emit.as_ref().expect("recorded").summary;
    assert_eq!((summary.scpt_samples, summary.ssft_samples), (4, 8));
    assert_eq!(summary.scpt_tokens, scpt.iter().map(|s| s.text.split_whitespace().count() as u64).sum::<u64>());
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path(DATASET_INFO)).expect("info")).expect("json");
    assert_eq!(info["strata_medicine_scpt"]["file_name"], "scpt.parquet");
    assert_eq!(info["strata_medicine_ssft"]["formatting"], "alpaca");
}

#[test]
fn an_assignment_to_an_unknown_node_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, stage) = write_run(dir.path());
    let bad = [AssignmentRecord { chunk_id: "doc#0".into(), node_id: 99, duplicate_of: None }];
    let mut rows: Vec<AssignmentRecord> = read_rows(&run.path(WORK_ASSIGNMENTS)).expect("assignments");
    rows[0] = bad[0].clone();
    write_rows(&run.path(WORK_ASSIGNMENTS), &AssignmentRecord::fields(), &rows, &[]).expect("assignments");
    let err = run_stage(&run, &mut Manifest::new(json!({})), &stage, &NoProgress, false).expect_err("node 99");
    let chain: Vec<String> = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source()).map(|e| e.to_string()).collect();
    assert!(chain.iter().any(|m| m.contains("assignments.parquet") && m.contains("node 99")), "{chain:?}");
    assert!(!run.path(SCPT).exists(), "nothing half-written");
}
