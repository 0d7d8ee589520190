//! The emit stage over a small run directory written here (a taxonomy of two branches, four
//! documents of five chunks in four passages, two selected, two drawn at random) with a
//! whitespace tokenizer (fixtures/tokenizer/words.json), so token counts are word counts:
//! textbook order, the passage sample's layout with the document's sections under the bold
//! leaf, counts, the ablation sets, StructTuning's question answering, the published chunks
//! and passages, and the LLaMA-Factory registry.

use serde_json::json;
use std::path::PathBuf;
use strata_core::manifest::Manifest;
use strata_core::parquet_io::{read_rows, write_rows};
use strata_core::records::{
    AssignmentRecord, ChunkRecord, PassageAssignment, PassageRecord, PublishedChunk, PublishedPassage, Sample, SelectionRecord,
    TaxonomyNode,
};
use strata_core::rundir::{
    CHUNKS, CPT, DATASET_INFO, PASSAGES, RANDOM_CPT, RANDOM_SCPT, SCPT, SSFT, SSFT_QA, TAXONOMY, WORK_ASSIGNMENTS, WORK_CHUNKS,
    WORK_PASSAGES, WORK_PASSAGE_ASSIGNMENTS, WORK_SELECTION,
};
use strata_core::stage::run_stage;
use strata_core::{NoProgress, RunDir};
use strata_emit::{EmitConfig, EmitStage};

fn node(id: u32, parent: Option<u32>, depth: u8, path: &[&str]) -> TaxonomyNode {
    TaxonomyNode {
        node_id: id,
        parent_id: parent,
        depth,
        label: path.last().copied().unwrap_or("medicine").into(),
        path: path.iter().map(|s| s.to_string()).collect(),
        n_chunks: 1,
        n_tokens: 1,
        ..Default::default()
    }
}

/// Passages (document, chunks' sections, leaf, selected, random): a (two chunks, Overview and
/// Symptoms) in Heart failure, selected; b in Vaccines, selected and drawn; c in Arrhythmias,
/// drawn; d in Heart failure, neither.
const PASSAGES_: [(&str, &[&str], u32, bool, bool); 4] = [
    ("a", &["Overview", "Symptoms"], 2, true, false),
    ("b", &["Schedule"], 5, true, true),
    ("c", &["Causes"], 3, false, true),
    ("d", &["Outlook"], 2, false, false),
];

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
    let (mut chunks, mut passages, mut placed, mut assigned, mut selection) = (vec![], vec![], vec![], vec![], vec![]);
    for (doc, sections, leaf, selected, random) in PASSAGES_ {
        let passage_id = format!("{doc}#p0");
        let first_chunk = chunks.len() as u64;
        let texts: Vec<String> = sections.iter().map(|s| format!("{doc} {} text about medicine", s.to_lowercase())).collect();
        for (k, (section, text)) in sections.iter().zip(&texts).enumerate() {
            let chunk_id = format!("{doc}#{k}");
            chunks.push(ChunkRecord {
                chunk_id: chunk_id.clone(),
                doc_id: doc.into(),
                source: format!("{doc}.md"),
                ordinal: k as u32,
                heading_path: vec![doc.to_uppercase(), section.to_string()],
                text: text.clone(),
                n_tokens: 5,
                byte_start: 0,
                byte_end: 1,
                content_hash: format!("{:016x}", chunks.len()),
                passage_id: passage_id.clone(),
            });
            assigned.push(AssignmentRecord { chunk_id, node_id: leaf, duplicate_of: None });
        }
        let text = texts.join("\n\n");
        passages.push(PassageRecord {
            passage_id: passage_id.clone(),
            doc_id: doc.into(),
            first_chunk,
            n_chunks: sections.len() as u32,
            n_tokens: text.split_whitespace().count() as u32,
            content_hash: format!("{:016x}", passages.len()),
            text,
        });
        placed.push(PassageAssignment { passage_id: passage_id.clone(), node_id: leaf, duplicate_of: None });
        selection.push(SelectionRecord { passage_id, selected, random });
    }
    std::fs::create_dir_all(dir.join("work")).expect("work");
    write_rows(&run.path(TAXONOMY), &TaxonomyNode::fields(false), &nodes, &[]).expect("taxonomy");
    write_rows(&run.path(WORK_CHUNKS), &ChunkRecord::fields(), &chunks, &[]).expect("chunks");
    write_rows(&run.path(WORK_PASSAGES), &PassageRecord::fields(), &passages, &[]).expect("passages");
    write_rows(&run.path(WORK_ASSIGNMENTS), &AssignmentRecord::fields(), &assigned, &[]).expect("assignments");
    write_rows(&run.path(WORK_PASSAGE_ASSIGNMENTS), &PassageAssignment::fields(), &placed, &[]).expect("placed");
    write_rows(&run.path(WORK_SELECTION), &SelectionRecord::fields(), &selection, &[]).expect("selection");
    let questions = dir.join("questions.jsonl");
    let lines = [
        json!({"question": "What are the symptoms of a?", "doc_id": "a"}),
        json!({"question": "When is b given?", "doc_id": "b", "answer": "In childhood."}),
        json!({"question": "What causes c?", "doc_id": "c"}),
        json!({"question": "What is z?", "doc_id": "z"}),
    ];
    std::fs::write(&questions, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("questions");
    let tokenizer_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tokenizer/words.json");
    let config = EmitConfig { questions: Some(questions), ..EmitConfig::default() };
    (run, EmitStage { config, domain: "medicine".into(), seed: 42, tokenizer_path, llm_qa: None })
}

fn words(text: &str) -> u32 {
    text.split_whitespace().count() as u32
}

#[test]
fn samples_come_in_textbook_order_with_their_structure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, stage) = write_run(dir.path());
    let mut manifest = Manifest::new(json!({}));
    run_stage(&run, &mut manifest, &stage, &NoProgress, false).expect("emit runs");

    let scpt: Vec<Sample> = read_rows(&run.path(SCPT)).expect("scpt");
    let order: Vec<(&str, Option<&str>, u32)> = scpt.iter().map(|s| (s.kind.as_str(), s.passage_id.as_deref(), s.node_id)).collect();
    assert_eq!(order, [("mindmap", None, 1), ("passage", Some("a#p0"), 2), ("mindmap", None, 4), ("passage", Some("b#p0"), 5)]);

    let heart = &scpt[1];
    assert_eq!(heart.response, "Heart failure\na overview text about medicine\n\na symptoms text about medicine");
    let map = "```\nCardiology\n├─ **Heart failure**\n│  └─ A\n│     ├─ Overview\n│     └─ Symptoms\n└─ Arrhythmias\n```";
    assert!(heart.prompt.contains(map), "{}", heart.prompt);
    assert_eq!(heart.text, format!("{}\n{}", heart.prompt, heart.response));
    assert_eq!(heart.n_tokens, words(&heart.text));
    assert_eq!(
        (heart.chunk_id.as_deref(), heart.taxonomy_path.as_slice()),
        (None, &["Cardiology".to_string(), "Heart failure".to_string()][..])
    );
    assert_eq!(
        (heart.instruction.as_str(), heart.input.as_str(), heart.output.as_str()),
        (heart.prompt.as_str(), "", heart.response.as_str())
    );
    assert_eq!(scpt[0].response, "```\nCardiology\n├─ Heart failure\n└─ Arrhythmias\n```");

    // SSFT: a locate sample per selected passage, then outline and subtopics per inner node.
    let ssft: Vec<Sample> = read_rows(&run.path(SSFT)).expect("ssft");
    let kinds: Vec<(&str, u32)> = ssft.iter().map(|s| (s.kind.as_str(), s.node_id)).collect();
    let expected = [
        ("locate", 2),
        ("locate", 5),
        ("outline", 0),
        ("subtopics", 0),
        ("outline", 1),
        ("subtopics", 1),
        ("outline", 4),
        ("subtopics", 4),
    ];
    assert_eq!(kinds, expected);
    assert_eq!(ssft[0].output, "Cardiology > Heart failure");
    assert_eq!(ssft[5].output, "- Heart failure\n- Arrhythmias");
    assert_eq!(ssft[2].prompt, "Outline the structure of medicine as a mind map.");
    assert_eq!(ssft[4].prompt, "Outline the structure of Cardiology in medicine as a mind map.");

    let published: Vec<PublishedChunk> = read_rows(&run.path(CHUNKS)).expect("chunks");
    let placed: Vec<(&str, u32, bool)> = published.iter().map(|c| (c.passage_id.as_str(), c.node_id, c.selected)).collect();
    assert_eq!(placed, [("a#p0", 2, true), ("a#p0", 2, true), ("b#p0", 5, true), ("c#p0", 3, false), ("d#p0", 2, false)]);
    let passages: Vec<PublishedPassage> = read_rows(&run.path(PASSAGES)).expect("passages");
    assert_eq!(passages[0].chunk_ids, ["a#0", "a#1"]);
    assert_eq!(
        (passages[2].node_id, passages[2].taxonomy_path.as_slice(), passages[2].selected),
        (3, &["Cardiology".to_string(), "Arrhythmias".to_string()][..], false)
    );

    let summary = &manifest.stages.emit.as_ref().expect("recorded").summary;
    assert_eq!((summary.scpt_samples, summary.ssft_samples), (4, 8));
    assert_eq!(summary.scpt_tokens, scpt.iter().map(|s| words(&s.text) as u64).sum::<u64>());
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path(DATASET_INFO)).expect("info")).expect("json");
    assert_eq!(info["strata_medicine_scpt"]["file_name"], "scpt.parquet");
    assert_eq!(info["strata_medicine_ssft_qa"]["formatting"], "alpaca");
    assert_eq!(info["strata_medicine_cpt"], json!({"file_name": "cpt.parquet", "columns": {"prompt": "text"}}));
    let names: Vec<&String> = info.as_object().expect("object").keys().collect();
    assert_eq!(names.len(), 6, "{names:?}");
}

#[test]
fn ablation_sets_hold_the_same_and_the_random_passages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, stage) = write_run(dir.path());
    run_stage(&run, &mut Manifest::new(json!({})), &stage, &NoProgress, false).expect("emit runs");
    let ids = |rel: &str, kind: &str| -> Vec<String> {
        let rows: Vec<Sample> = read_rows(&run.path(rel)).expect("set");
        rows.iter().filter(|s| s.kind == kind).map(|s| s.passage_id.clone().expect("passage")).collect()
    };
    assert_eq!(ids(CPT, "passage"), ["a#p0", "b#p0"]);
    // Textbook order: Arrhythmias (node 3) before Vaccines (node 5).
    assert_eq!(ids(RANDOM_CPT, "passage"), ["c#p0", "b#p0"]);
    assert_eq!(ids(RANDOM_SCPT, "passage"), ["c#p0", "b#p0"]);
    let plain: Vec<Sample> = read_rows(&run.path(CPT)).expect("cpt");
    assert_eq!(
        (plain[0].prompt.as_str(), plain[0].text.as_str()),
        ("", "a overview text about medicine\n\na symptoms text about medicine")
    );
    assert_eq!(plain[0].n_tokens, 10);
}

#[test]
fn questions_are_answered_structure_first_from_selected_passages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, stage) = write_run(dir.path());
    let mut manifest = Manifest::new(json!({}));
    run_stage(&run, &mut manifest, &stage, &NoProgress, false).expect("emit runs");
    let qa: Vec<Sample> = read_rows(&run.path(SSFT_QA)).expect("qa");
    let kinds: Vec<(&str, &str)> = qa.iter().map(|s| (s.kind.as_str(), s.input.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("qa", "What are the symptoms of a?"),
            ("qa_structure", "What are the symptoms of a?"),
            ("qa", "When is b given?"),
            ("qa_structure", "When is b given?")
        ]
    );
    let prompt = "Answer the following question about medicine.\n\n# Question\nWhat are the symptoms of a?\n\n# Answer\n";
    let expected = "Here is the knowledge structure regarding Cardiology:\n\n```\nCardiology\n├─ **Heart failure**\n│  └─ A\n│     ├─ Overview\n│     └─ Symptoms\n└─ Arrhythmias\n```\n\n\
        The question concerns **Heart failure**, found under Cardiology > Heart failure, in the section \"Overview\" of its source.\n\
        Overall, the answer is:\n\na overview text about medicine\n\na symptoms text about medicine";
    assert_eq!((qa[1].prompt.as_str(), qa[1].response.as_str()), (prompt, expected));
    assert_eq!(qa[0].response, "a overview text about medicine\n\na symptoms text about medicine");
    assert_eq!(qa[2].response, "In childhood.");
    assert!(
        qa[3].response.ends_with("Overall, the answer is:\n\nIn childhood.") && qa[3].response.contains("b schedule text"),
        "{}",
        qa[3].response
    );
    let summary = &manifest.stages.emit.as_ref().expect("recorded").summary;
    assert_eq!((summary.ssft_qa_samples, summary.questions_unselected, summary.questions_unknown_document), (4, 1, 1));
}

#[test]
fn an_assignment_to_an_unknown_node_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, stage) = write_run(dir.path());
    let mut rows: Vec<PassageAssignment> = read_rows(&run.path(WORK_PASSAGE_ASSIGNMENTS)).expect("assignments");
    rows[0].node_id = 99;
    write_rows(&run.path(WORK_PASSAGE_ASSIGNMENTS), &PassageAssignment::fields(), &rows, &[]).expect("assignments");
    let err = run_stage(&run, &mut Manifest::new(json!({})), &stage, &NoProgress, false).expect_err("node 99");
    let chain: Vec<String> = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source()).map(|e| e.to_string()).collect();
    assert!(chain.iter().any(|m| m.contains("passage_assignments.parquet") && m.contains("node 99")), "{chain:?}");
    assert!(!run.path(SCPT).exists(), "nothing half-written");
}
