//! End to end: the binary on the demo corpus, checked as a client would check the run
//! directory (schemas, counts, budget, index), plus determinism and rerun behaviour.

use std::path::{Path, PathBuf};
use std::process::Command;
use strata_core::parquet_io::{read_metadata, read_rows};
use strata_core::records::{EmbeddingRecord, PublishedChunk, Sample, TaxonomyNode};
use strata_core::rundir::*;

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

    // The budget holds and the subset covers the taxonomy.
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join(MANIFEST)).expect("manifest")).expect("json");
    let budget = manifest["stages"]["select"]["budget_tokens"].as_u64().expect("budget_tokens");
    let selected: Vec<&PublishedChunk> = chunks.iter().filter(|c| c.selected).collect();
    let used: u64 = selected.iter().map(|c| c.n_tokens as u64).sum();
    assert!(used <= budget && used > budget / 2, "used {used} of {budget}");
    let min_chunk_tokens = manifest["config"]["select"]["min_chunk_tokens"].as_u64().expect("min_chunk_tokens") as u32;
    assert!(selected.iter().all(|c| strata_core::eligible(c.n_tokens, c.duplicate_of.is_some(), min_chunk_tokens)));
    let leaves: std::collections::HashSet<u32> = chunks.iter().map(|c| c.node_id).collect();
    let covered: std::collections::HashSet<u32> = selected.iter().map(|c| c.node_id).collect();
    assert!(covered.len() * 10 >= leaves.len() * 9, "{} of {} leaves covered", covered.len(), leaves.len());

    // Samples: one chunk sample per selected chunk, leaf in bold, text = prompt + response.
    let scpt: Vec<Sample> = read_rows(&a.join(SCPT)).expect("scpt");
    let chunk_samples: Vec<&Sample> = scpt.iter().filter(|s| s.kind == "chunk").collect();
    assert_eq!(chunk_samples.len(), selected.len());
    for s in &chunk_samples {
        let leaf = nodes.iter().find(|n| n.node_id == s.node_id).expect("leaf");
        assert!(s.prompt.contains(&format!("**{}**", leaf.label)));
        assert!(s.text.starts_with(&s.prompt) && s.text.ends_with(&s.response));
    }
    assert!(scpt.iter().any(|s| s.kind == "mindmap"));
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
    for f in [CHUNKS, EMBEDDINGS, TAXONOMY, SCPT, SSFT, TAXONOMY_JSON, DATASET_INFO] {
        assert_eq!(std::fs::read(a.join(f)).expect("a"), std::fs::read(b.join(f)).expect("b"), "{f} differs between runs");
    }

    // A rerun with nothing changed skips every stage but the report; a new budget reruns
    // selection and what follows, not chunking, embedding or the taxonomy.
    let again = run_demo(&a, &[]);
    for stage in ["chunk", "embed", "taxonomy", "select", "emit", "index", "cost"] {
        assert!(again.lines().any(|l| l.starts_with(stage) && l.contains("skipped")), "{stage} not skipped:\n{again}");
    }
    let rebudget = run_demo(&a, &["--budget", "0.05"]);
    for (stage, status) in [("chunk", "skipped"), ("embed", "skipped"), ("taxonomy", "skipped"), ("select", "ran"), ("emit", "ran")] {
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
