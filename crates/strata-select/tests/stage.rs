//! The subtrees and select stages end to end on a small run directory written here (one chunk
//! per passage): they read the chunk stage's corpus total from the manifest, the passages,
//! their assignments and the vectors, and write one selection row per passage, within the
//! budget, eligible passages only, every leaf covered; and the seeded random draw at the same
//! budget. Past `subtree_above` the choice is per subtree within the bound (a level-1 subtree
//! over it split into its children); two shards' choices in their shares of the subtrees give
//! the same selection.

use serde_json::json;
use strata_core::manifest::{Manifest, StageRun};
use strata_core::parquet_io::{read_rows, write_rows};
use strata_core::records::{ChunkRecord, EmbeddingRecord, PassageAssignment, PassageRecord, SelectionRecord, TaxonomyNode};
use strata_core::rundir::{EMBEDDINGS, TAXONOMY, WORK_CHUNKS, WORK_PASSAGES, WORK_PASSAGE_ASSIGNMENTS, WORK_SELECTION, WORK_SUBTREES};
use strata_core::shard::Parts;
use strata_core::stage::{run_stage, RunError};
use strata_core::summary::ChunkSummary;
use strata_core::{NoProgress, RunDir, Shard, StageSummary};
use strata_select::{PartSelectStage, SelectConfig, SelectStage, SubtreesStage};

/// (leaf, tokens, duplicate, vector angle in degrees) of each chunk.
const CHUNKS: [(u32, u32, bool, f32); 8] = [
    (2, 100, false, 0.0),
    (2, 100, false, 10.0),
    (2, 20, false, 20.0), // a crumb: under min_passage_tokens
    (3, 100, false, 90.0),
    (3, 100, true, 91.0), // marked a near-duplicate by the taxonomy
    (3, 100, false, 120.0),
    (4, 100, false, 200.0),
    (4, 100, false, 230.0),
];

fn write_run(dir: &std::path::Path) -> (RunDir, Manifest) {
    let run = RunDir::new(dir);
    let id = |i: usize| format!("doc#{i}");
    let passage = |i: usize| format!("doc#p{i}");
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
            passage_id: passage(i),
        })
        .collect();
    let passages: Vec<PassageRecord> = CHUNKS
        .iter()
        .enumerate()
        .map(|(i, &(_, n_tokens, _, _))| PassageRecord {
            passage_id: passage(i),
            doc_id: "doc".into(),
            first_chunk: i as u64,
            n_chunks: 1,
            text: format!("chunk {i}"),
            n_tokens,
            content_hash: format!("{i:016x}"),
        })
        .collect();
    let vectors: Vec<EmbeddingRecord> = CHUNKS
        .iter()
        .enumerate()
        .map(|(i, c)| EmbeddingRecord { chunk_id: id(i), embedding: vec![c.3.to_radians().cos(), c.3.to_radians().sin()] })
        .collect();
    let assignments: Vec<PassageAssignment> = CHUNKS
        .iter()
        .enumerate()
        .map(|(i, c)| PassageAssignment { passage_id: passage(i), node_id: c.0, duplicate_of: c.2.then(|| passage(i - 1)) })
        .collect();
    std::fs::create_dir_all(dir.join("work")).expect("work dir");
    write_rows(&run.path(WORK_CHUNKS), &ChunkRecord::fields(), &chunks, &[]).expect("chunks");
    write_rows(&run.path(EMBEDDINGS), &EmbeddingRecord::fields(2), &vectors, &[]).expect("embeddings");
    write_rows(&run.path(WORK_PASSAGES), &PassageRecord::fields(), &passages, &[]).expect("passages");
    write_rows(&run.path(WORK_PASSAGE_ASSIGNMENTS), &PassageAssignment::fields(), &assignments, &[]).expect("assignments");
    // Leaves 2 and 3 under node 1, leaf 4 alone: two level-1 subtrees below the root.
    let node = |node_id: u32, parent_id: Option<u32>, depth: u8| TaxonomyNode {
        node_id,
        parent_id,
        depth,
        label: format!("node {node_id}"),
        n_chunks: 1,
        n_tokens: 1,
        ..Default::default()
    };
    let nodes = [node(0, None, 0), node(1, Some(0), 1), node(2, Some(1), 2), node(3, Some(1), 2), node(4, Some(0), 1)];
    write_rows(&run.path(TAXONOMY), &TaxonomyNode::fields(false), &nodes, &[]).expect("taxonomy");
    let mut manifest = Manifest::new(json!({}));
    let corpus_tokens = CHUNKS.iter().map(|c| c.1 as u64).sum();
    let chunk = ChunkSummary { corpus_tokens, documents: 1, files: 1, ..Default::default() };
    manifest.stages.insert(StageRun { rows_out: CHUNKS.len() as u64, ..Default::default() }, StageSummary::Chunk(chunk));
    (run, manifest)
}

/// The subtrees stage, then the select stage (taking the picks of `parts` where current).
fn select(run: &RunDir, manifest: &mut Manifest, config: SelectConfig, seed: u64, parts: Option<Parts>) -> Result<(), RunError> {
    run_stage(run, manifest, &SubtreesStage { config: config.clone() }, &NoProgress, false)?;
    run_stage(run, manifest, &SelectStage { config, seed, parts }, &NoProgress, false).map(|_| ())
}

#[test]
fn selects_within_the_budget_one_per_leaf_and_eligible_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, mut manifest) = write_run(dir.path());
    // 720 corpus tokens; 0.5 gives 360: room for three chunks of 100, one per leaf.
    select(&run, &mut manifest, config(0.5), 42, None).expect("select runs");

    let rows: Vec<SelectionRecord> = read_rows(&run.path(WORK_SELECTION)).expect("selection");
    assert_eq!(rows.iter().map(|r| r.passage_id.as_str()).collect::<Vec<_>>(), (0..8).map(|i| format!("doc#p{i}")).collect::<Vec<_>>());
    let chosen: Vec<usize> = rows.iter().enumerate().filter(|(_, r)| r.selected).map(|(i, _)| i).collect();
    assert!(!chosen.contains(&2) && !chosen.contains(&4), "a crumb or a duplicate was taken: {chosen:?}");
    let leaves: std::collections::BTreeSet<u32> = chosen.iter().map(|&i| CHUNKS[i].0).collect();
    assert_eq!(leaves.into_iter().collect::<Vec<_>>(), vec![2, 3, 4], "every leaf covered");
    assert_eq!(chosen.len(), 3);

    let s = &manifest.stages.select.as_ref().expect("recorded").summary;
    assert_eq!((s.corpus_tokens, s.budget_tokens, s.selected_tokens, s.selected_passages), (720, 360, 300, 3));
    assert_eq!((s.eligible_passages, s.leaves, s.leaves_covered, s.subtrees), (6, 3, 3, None));
}

#[test]
fn beyond_subtree_above_each_level1_subtree_is_selected_with_its_share_of_the_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, mut manifest) = write_run(dir.path());
    // 360 budget tokens, short of covering the three leaves at the cost floor (160 each): the
    // subtree of leaves 2 and 3 gets 240 (a passage per leaf), leaf 4 120 (one passage). Its 6
    // passages are within the bound.
    let by_subtree = SelectConfig { subtree_above: 6, ..config(0.5) };
    select(&run, &mut manifest, by_subtree.clone(), 42, None).expect("select runs");
    let rows: Vec<SelectionRecord> = read_rows(&run.path(WORK_SELECTION)).expect("selection");
    let chosen: Vec<usize> = rows.iter().enumerate().filter(|(_, r)| r.selected).map(|(i, _)| i).collect();
    assert!(!chosen.contains(&2) && !chosen.contains(&4), "a crumb or a duplicate was taken: {chosen:?}");
    assert_eq!(chosen.iter().map(|&i| CHUNKS[i].0).collect::<Vec<_>>(), vec![2, 3, 4], "a passage per leaf: {chosen:?}");
    let s = &manifest.stages.select.as_ref().expect("recorded").summary;
    assert_eq!((s.selected_tokens, s.leaves_covered, s.subtrees, s.picked_parts), (300, 3, Some(2), None));
    let groups = &manifest.stages.subtrees.as_ref().expect("recorded").summary;
    assert_eq!((groups.budget_tokens, groups.subtrees), (360, Some(2)));

    // Two shards, each choosing in one of the two subtrees: the same selection, from their picks.
    let before = std::fs::read(run.path(WORK_SELECTION)).expect("selection");
    for shard in Shard::all(2) {
        let part = run.part(shard);
        std::fs::create_dir_all(part.root()).expect("part dir");
        let stage = PartSelectStage::new(&run, &manifest, by_subtree.clone(), 42, shard).expect("after the subtrees stage");
        let mut own = Manifest::new(json!({}));
        run_stage(&part, &mut own, &stage, &NoProgress, false).expect("a shard chooses");
        assert_eq!(own.stages.select.as_ref().expect("recorded").summary.subtrees, Some(1));
    }
    let parts = Parts::load(&run, 2).expect("parts");
    let stage = SelectStage { config: by_subtree.clone(), seed: 42, parts: Some(parts) };
    run_stage(&run, &mut manifest, &stage, &NoProgress, true).expect("select from the picks");
    assert_eq!(manifest.stages.select.as_ref().expect("recorded").summary.picked_parts, Some(2));
    assert_eq!(std::fs::read(run.path(WORK_SELECTION)).expect("selection"), before, "the shards' picks differ");

    // Picks made with another seed are not this run's: the stage chooses itself.
    let other = PartSelectStage::new(&run, &manifest, by_subtree.clone(), 43, Shard::new(0, 2).expect("shard")).expect("stage");
    run_stage(&run.part(Shard::new(0, 2).expect("shard")), &mut Manifest::new(json!({})), &other, &NoProgress, false).expect("runs");
    let stage = SelectStage { config: by_subtree, seed: 42, parts: Some(Parts::load(&run, 2).expect("parts")) };
    run_stage(&run, &mut manifest, &stage, &NoProgress, true).expect("select");
    assert_eq!(manifest.stages.select.as_ref().expect("recorded").summary.picked_parts, Some(1));
    assert_eq!(std::fs::read(run.path(WORK_SELECTION)).expect("selection"), before);
}

#[test]
fn selection_with_settings_other_than_the_subtrees_stage_had_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, mut manifest) = write_run(dir.path());
    select(&run, &mut manifest, config(0.5), 42, None).expect("select runs");
    // `strata select --budget 0.25` alone: the groups' budget shares are of 0.5.
    let stage = SelectStage { config: config(0.25), seed: 42, parts: None };
    let err = run_stage(&run, &mut manifest, &stage, &NoProgress, false).expect_err("stale subtrees");
    let chain: Vec<String> = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source()).map(|e| e.to_string()).collect();
    assert!(chain.iter().any(|m| m.contains("subtrees.json") && m.contains("strata subtrees")), "{chain:?}");
}

#[test]
fn a_shard_cannot_choose_before_the_subtrees_stage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, manifest) = write_run(dir.path());
    let err = PartSelectStage::new(&run, &manifest, SelectConfig::default(), 1, Shard::new(1, 4).expect("shard")).err().expect("refused");
    assert!(err.to_string().contains("--until subtrees") && err.to_string().contains("--shards 4"), "{err}");
}

#[test]
fn a_level1_subtree_over_the_bound_is_split_into_its_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, mut manifest) = write_run(dir.path());
    // Node 1's 6 passages are over 4: its leaves 2 and 3 are groups of their own, beside leaf 4,
    // each with its share of the 360 budget tokens: a third each, by what covering a leaf costs.
    select(&run, &mut manifest, SelectConfig { subtree_above: 4, ..config(0.5) }, 42, None).expect("select runs");
    let listing: serde_json::Value = serde_json::from_slice(&std::fs::read(run.path(WORK_SUBTREES)).expect("subtrees.json")).expect("json");
    let groups: Vec<(u64, u64, u64)> = listing["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (g["node_id"].as_u64().expect("a node"), g["passages"].as_u64().expect("rows"), g["budget_tokens"].as_u64().expect("budget"))
        })
        .collect();
    assert_eq!(groups, [(2, 3, 120), (3, 3, 120), (4, 2, 120)]);
    let s = &manifest.stages.select.as_ref().expect("recorded").summary;
    assert_eq!((s.subtrees, s.leaves_covered, s.selected_passages), (Some(3), 3, 3));
}

/// Crumbs are passages under 32 tokens here (the default, 128, is sized for real passages).
fn config(budget: f64) -> SelectConfig {
    SelectConfig { budget, min_passage_tokens: 32, ..SelectConfig::default() }
}

#[test]
fn the_random_draw_fills_the_same_budget_with_eligible_passages_and_follows_the_seed() {
    let draw = |budget: f64, seed: u64| -> Vec<bool> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (run, mut manifest) = write_run(dir.path());
        select(&run, &mut manifest, config(budget), seed, None).expect("select runs");
        let s = &manifest.stages.select.as_ref().expect("recorded").summary;
        let rows: Vec<SelectionRecord> = read_rows(&run.path(WORK_SELECTION)).expect("selection");
        let random: Vec<bool> = rows.iter().map(|r| r.random).collect();
        let tokens: u64 = random.iter().zip(CHUNKS).filter(|(r, _)| **r).map(|(_, c)| c.1 as u64).sum();
        assert_eq!((s.random_tokens, s.random_passages), (tokens, random.iter().filter(|r| **r).count() as u64));
        // Within the budget, and within one passage (100 tokens) of it unless every eligible
        // passage (600 tokens) was drawn: none left would fit.
        assert!(tokens <= s.budget_tokens && (s.budget_tokens - tokens < 100 || tokens == 600), "{tokens} of {}", s.budget_tokens);
        assert!(!random[2] && !random[4], "a crumb or a duplicate was drawn: {random:?}");
        random
    };
    let first = draw(0.5, 7);
    assert_eq!(first.iter().filter(|r| **r).count(), 3);
    assert_eq!(draw(0.5, 7), first, "same seed, same draw");
    let others: Vec<Vec<bool>> = (8..14).map(|seed| draw(0.5, seed)).collect();
    assert!(others.iter().any(|o| *o != first), "other seeds draw other passages");
    assert!(draw(1.0, 7).iter().enumerate().all(|(i, &r)| r != [2, 4].contains(&i)), "a budget of everything draws every eligible passage");
}

#[test]
fn without_the_chunk_stage_record_it_names_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, _) = write_run(dir.path());
    let mut empty = Manifest::new(json!({}));
    let err = select(&run, &mut empty, SelectConfig::default(), 1, None).expect_err("no corpus total");
    let chain: Vec<String> = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source()).map(|e| e.to_string()).collect();
    assert!(chain.iter().any(|m| m.contains("manifest.json") && m.contains("chunk stage")), "{chain:?}");
}
