//! End to end: the binary on the demo corpus, checked as a client would check the run
//! directory (schemas, counts, budget, index), plus determinism and rerun behaviour.

use std::path::{Path, PathBuf};
use std::process::Command;
use strata_core::parquet_io::{read_metadata, read_rows};
use strata_core::records::{EmbeddingRecord, PublishedChunk, PublishedPassage, Sample, TaxonomyNode};
use strata_core::rundir::*;
use strata_core::tokens::TokenCounter;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn strata(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata")).args(args).current_dir(repo()).output().expect("strata runs")
}

fn run_demo(out: &Path, extra: &[&str]) -> String {
    let recipe = repo().join("pipeline/medicine.toml");
    let mut args = vec!["run", "--recipe", recipe.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let o = strata(&args);
    assert!(o.status.success(), "strata run failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn demo_run_honours_the_contract_and_is_deterministic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a");
    run_demo(&a, &[]);

    for f in [MANIFEST, CHUNKS, EMBEDDINGS, TAXONOMY, TAXONOMY_JSON, SCPT, SSFT, DATASET_INFO, INDEX_DIR, COST, REPORT] {
        assert!(a.join(f).exists(), "missing {f}");
    }
    assert!(!a.join(TMP_DIR).exists(), "temporary folder left behind");

    let chunks: Vec<PublishedChunk> = read_rows(&a.join(CHUNKS)).expect("chunks");
    let nodes: Vec<TaxonomyNode> = read_rows(&a.join(TAXONOMY)).expect("taxonomy");
    let embeddings: Vec<EmbeddingRecord> = read_rows(&a.join(EMBEDDINGS)).expect("embeddings");
    assert!(chunks.len() > 100, "{} chunks", chunks.len());
    assert_eq!(embeddings.len(), chunks.len());
    assert!(read_metadata(&a.join(EMBEDDINGS)).expect("meta").contains_key("model"));

    // Every chunk sits in a leaf; three levels below the root with several level-1 nodes.
    let parents: std::collections::HashSet<u32> = nodes.iter().filter_map(|n| n.parent_id).collect();
    assert!(chunks.iter().all(|c| !parents.contains(&c.node_id)));
    assert!(nodes.iter().any(|n| n.depth == 3));
    assert!(nodes.iter().filter(|n| n.depth == 1).count() >= 4);
    for n in &nodes {
        let siblings: Vec<&str> =
            nodes.iter().filter(|m| m.parent_id == n.parent_id && m.parent_id.is_some()).map(|m| m.label.as_str()).collect();
        assert_eq!(siblings.iter().filter(|&&l| l == n.label).count(), siblings.len().min(1), "duplicate sibling label {}", n.label);
        // A label names a topic: not a number, not its parent's label; every node has keywords.
        assert!(n.label.chars().any(char::is_alphabetic), "label {:?}", n.label);
        let parent = n.parent_id.map(|p| nodes[p as usize].label.as_str());
        assert_ne!(parent, Some(n.label.as_str()), "node {} repeats its parent's label", n.node_id);
        assert!(!n.keywords.is_empty(), "node {} has no keywords", n.node_id);
    }

    // Passages: consecutive chunks of one document, each at most passage_tokens target
    // tokens, counted exactly by the target tokenizer the recipe names (Qwen3's BPE).
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join(MANIFEST)).expect("manifest")).expect("json");
    let passages: Vec<PublishedPassage> = read_rows(&a.join(PASSAGES)).expect("passages");
    let target = manifest["config"]["target"]["tokenizer"].as_str().expect("the demo names a target tokenizer");
    assert_eq!(manifest["stages"]["chunk"]["target_tokenizer"]["is_target"], true);
    let counter = TokenCounter::from_file(Path::new(target)).expect("target tokenizer (make model)");
    let limit = manifest["config"]["target"]["passage_tokens"].as_u64().expect("passage_tokens") as u32;
    for p in &passages {
        assert_eq!(p.n_tokens as usize, counter.count(&p.text).expect("count"), "{}", p.passage_id);
        assert!(p.n_tokens <= limit, "{} has {} tokens", p.passage_id, p.n_tokens);
        let mine: Vec<&PublishedChunk> = chunks.iter().filter(|c| c.passage_id == p.passage_id).collect();
        assert_eq!(mine.iter().map(|c| c.chunk_id.as_str()).collect::<Vec<_>>(), p.chunk_ids);
        assert!(mine
            .iter()
            .all(|c| c.doc_id == p.doc_id && c.node_id == p.node_id && c.selected == p.selected && p.text.contains(&c.text)));
    }
    let corpus: u64 = passages.iter().map(|p| p.n_tokens as u64).sum();
    assert_eq!(manifest["stages"]["chunk"]["corpus_tokens"].as_u64(), Some(corpus));

    // The budget holds (target tokens) and the subset covers the taxonomy.
    let budget = manifest["stages"]["select"]["budget_tokens"].as_u64().expect("budget_tokens");
    let selected: Vec<&PublishedPassage> = passages.iter().filter(|p| p.selected).collect();
    let used: u64 = selected.iter().map(|p| p.n_tokens as u64).sum();
    assert!(used <= budget && used > budget / 2, "used {used} of {budget}");
    let min_passage_tokens = manifest["config"]["select"]["min_passage_tokens"].as_u64().expect("min_passage_tokens") as u32;
    assert!(selected.iter().all(|p| strata_core::eligible(p.n_tokens, p.duplicate_of.is_some(), min_passage_tokens)));
    let leaves: std::collections::HashSet<u32> = chunks.iter().map(|c| c.node_id).collect();
    let covered: std::collections::HashSet<u32> = selected.iter().map(|p| p.node_id).collect();
    assert!(covered.len() * 10 >= leaves.len() * 8, "{} of {} leaves covered", covered.len(), leaves.len());

    // Samples: one passage sample per selected passage, leaf in bold, text = prompt +
    // response, sized in target tokens; every set registered for LLaMA-Factory exists.
    let scpt: Vec<Sample> = read_rows(&a.join(SCPT)).expect("scpt");
    let passage_samples: Vec<&Sample> = scpt.iter().filter(|s| s.kind == "passage").collect();
    assert_eq!(passage_samples.len(), selected.len());
    for s in &passage_samples {
        let leaf = nodes.iter().find(|n| n.node_id == s.node_id).expect("leaf");
        assert!(s.prompt.contains(&format!("**{}**", leaf.label)));
        assert!(s.text.starts_with(&s.prompt) && s.text.ends_with(&s.response));
        assert_eq!(s.n_tokens as usize, counter.count(&s.text).expect("count"));
    }
    assert!(scpt.iter().any(|s| s.kind == "mindmap"));
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join(DATASET_INFO)).expect("info")).expect("json");
    let files: Vec<&str> = info.as_object().expect("object").values().map(|e| e["file_name"].as_str().expect("file_name")).collect();
    assert_eq!(files.len(), 6, "{files:?}");
    assert!(files.iter().all(|f| a.join(TRAIN_DIR).join(f).exists()), "{files:?}");
    let ssft: Vec<Sample> = read_rows(&a.join(SSFT)).expect("ssft");
    assert!(!ssft.is_empty() && ssft.iter().all(|s| !s.instruction.is_empty() && !s.output.is_empty()));

    // The index answers, and a subtree restricts it.
    let o = strata(&["search", "--run", a.to_str().expect("utf-8"), "seizures and epilepsy", "-k", "3", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hits = String::from_utf8_lossy(&o.stdout);
    assert_eq!(hits.lines().count(), 3);
    assert!(hits.to_lowercase().contains("seizure"), "{hits}");
    // A reader that closes the pipe early (`| head`) ends the search quietly, not in a panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["search", "--run", a.to_str().expect("utf-8"), "seizures", "-k", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strata runs");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success() && o.stderr.is_empty(), "{:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));

    // Same input and seed: byte-identical Parquet files.
    let b = tmp.path().join("b");
    run_demo(&b, &[]);
    for f in [CHUNKS, PASSAGES, EMBEDDINGS, TAXONOMY, SCPT, SSFT, CPT, RANDOM_SCPT, RANDOM_CPT, SSFT_QA, TAXONOMY_JSON, DATASET_INFO] {
        assert_eq!(std::fs::read(a.join(f)).expect("a"), std::fs::read(b.join(f)).expect("b"), "{f} differs between runs");
    }

    // A rerun with nothing changed skips every stage but the report; a new budget reruns
    // selection and what follows, not chunking, embedding or the taxonomy.
    let again = run_demo(&a, &[]);
    for stage in ["chunk", "embed", "fit", "taxonomy", "subtrees", "select", "emit", "index", "cost"] {
        assert!(again.lines().any(|l| l.starts_with(stage) && l.contains("skipped")), "{stage} not skipped:\n{again}");
    }
    let rebudget = run_demo(&a, &["--budget", "0.05"]);
    for (stage, status) in [
        ("chunk", "skipped"),
        ("embed", "skipped"),
        ("fit", "skipped"),
        ("taxonomy", "skipped"),
        ("subtrees", "ran"),
        ("select", "ran"),
        ("emit", "ran"),
    ] {
        assert!(rebudget.lines().any(|l| l.starts_with(stage) && l.contains(status)), "{stage} not {status}:\n{rebudget}");
    }
}

#[test]
fn bad_recipe_is_a_usage_error_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recipe = tmp.path().join("bad.toml");
    std::fs::write(&recipe, "domain = \"x\"\ncorpus = \"c\"\n[select]\nbudgte = 0.1\n").expect("write");
    let o = strata(&["run", "--recipe", recipe.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml") && err.contains("budgte"), "{err}");

    std::fs::write(&recipe, "domain = \"x\"\ncorpus = \"c\"\n[taxonomy]\nk_min = 1\n").expect("write");
    let o = strata(&["run", "--recipe", recipe.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("k_min"));
}
