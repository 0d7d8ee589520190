//! A sharded run equals a single-node run: the demo corpus (as a JSONL file and Markdown files,
//! so shards cut files and lines) run as four shards by the Slurm scripts of `tools/slurm/`,
//! each array task's command run in a shell with its index, the reduce jobs between and after
//! them, gives the contract files of `strata run` byte for byte, and an index (the shards'
//! merged) with the same hits; so does the demo with a tree fitted on a sample and the subset
//! chosen per subtree by the shards; so does a Parquet corpus in small row groups,
//! as three shards. A done shard is skipped on rerun, and the reduce refuses parts that are
//! missing or damaged.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use strata_core::rundir::{
    CHUNKS as CHUNKS_FILE, EMBEDDINGS as EMBEDDINGS_FILE, PASSAGES as PASSAGES_FILE, SCPT as SCPT_FILE, TAXONOMY as TAXONOMY_FILE,
};

const SHARDS: u32 = 4;

/// The demo corpus in `dir`: its first 30 documents as lines of `docs.jsonl`, the rest as files.
fn demo_corpus(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut docs: Vec<PathBuf> =
        std::fs::read_dir(repo().join("fixtures/medicine")).expect("fixtures").map(|e| e.expect("entry").path()).collect();
    docs.sort();
    let mut jsonl = String::new();
    for p in &docs[..30] {
        let text = std::fs::read_to_string(p).expect("read");
        let id = p.file_stem().expect("stem").to_string_lossy();
        jsonl.push_str(&serde_json::json!({"id": id, "text": text}).to_string());
        jsonl.push('\n');
    }
    std::fs::write(dir.join("docs.jsonl"), jsonl).expect("write");
    for p in &docs[30..] {
        std::fs::copy(p, dir.join(p.file_name().expect("name"))).expect("copy");
    }
}

/// Runs a script of `tools/slurm/` as Slurm would, with `env` (the array index among them).
fn slurm(script: &str, env: &[(&str, String)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(repo().join("tools/slurm").join(script)).current_dir(repo()).env("STRATA", env!("CARGO_BIN_EXE_strata"));
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c.output().expect("bash runs")
}

fn succeeded(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}", stderr(&o));
    o
}

/// Every file of `single` that must be the same in `sharded`: the Parquet files, the taxonomy
/// and dataset JSON, the dense search files (not the manifest, cost.json or the tantivy index,
/// which record timings and segment ids).
fn deterministic_files(single: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![single.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("ls") {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(single).expect("inside").to_path_buf();
            let name = rel.to_string_lossy().into_owned();
            if p.is_dir() && name != "index" {
                stack.push(p);
            } else if p.is_file() && !["manifest.json", "cost.json", "report.html"].contains(&name.as_str()) {
                files.push(rel);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn four_shards_by_the_slurm_scripts_equal_a_single_node_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let corpus = tmp.path().join("corpus");
    demo_corpus(&corpus);
    let recipe = repo().join("pipeline/medicine.toml");
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();
    succeeded(strata(&[
        "run",
        "--quiet",
        "--no-vector-cache",
        "--recipe",
        &path(&recipe),
        "--corpus",
        &path(&corpus),
        "--out",
        &path(&single),
    ]));

    let env = |index: Option<u32>| {
        let mut env = vec![
            ("RECIPE", path(&recipe)),
            ("SHARDS", SHARDS.to_string()),
            ("STRATA_ARGS", format!("--no-vector-cache --corpus {} --out {}", path(&corpus), path(&sharded))),
        ];
        env.extend(index.map(|i| ("SLURM_ARRAY_TASK_ID", i.to_string())));
        env
    };
    for i in 0..SHARDS {
        succeeded(slurm("map.sbatch", &env(Some(i))));
    }
    // Each round's tasks read what a reduce job wrote (the fitted tree, the published chunks):
    // not before it.
    let round = |stage: &str, i: u32| slurm("round.sbatch", &[env(Some(i)), vec![("STAGE", stage.to_string())]].concat());
    let early = round("taxonomy", 0);
    assert!(!early.status.success() && stderr(&early).contains("--until fit"), "{}", stderr(&early));
    let early = round("keywords", 0);
    assert!(!early.status.success() && stderr(&early).contains("--until keywords"), "{}", stderr(&early));
    let early = round("select", 0);
    assert!(!early.status.success() && stderr(&early).contains("--until subtrees"), "{}", stderr(&early));
    let early = round("index", 0);
    assert!(!early.status.success() && stderr(&early).contains("--until emit"), "{}", stderr(&early));
    let until = |stage: &str| [env(None), vec![("UNTIL", stage.to_string())]].concat();
    succeeded(slurm("reduce.sbatch", &until("fit")));
    assert!(
        sharded.join("work/taxonomy_fit.json").is_file() && !sharded.join("taxonomy.json").exists(),
        "the first reduce job went past the fit"
    );
    for i in 0..SHARDS {
        succeeded(round("taxonomy", i));
    }
    succeeded(slurm("reduce.sbatch", &until("keywords")));
    assert!(sharded.join("work/keywords.json").is_file() && !sharded.join("taxonomy.json").exists());
    for i in 0..SHARDS {
        succeeded(round("keywords", i));
    }
    succeeded(slurm("reduce.sbatch", &until("subtrees")));
    assert!(sharded.join("work/subtrees.json").is_file() && !sharded.join("work/selection.parquet").exists());
    for i in 0..SHARDS {
        succeeded(round("select", i));
    }
    succeeded(slurm("reduce.sbatch", &until("emit")));
    assert!(!sharded.join("index").exists() && sharded.join(CHUNKS_FILE).is_file(), "the second reduce job went past emit");
    for i in 0..SHARDS {
        succeeded(round("index", i));
    }
    succeeded(slurm("reduce.sbatch", &env(None)));
    // The first shard planned for all (file hashes, where each starts reading); the rest read it.
    assert!(sharded.join("shards/plan-of-00004.json").is_file(), "no shard plan");

    let files = deterministic_files(&single);
    assert!(files.iter().any(|f| f.ends_with("embeddings.parquet")) && files.len() > 15, "{files:?}");
    for rel in &files {
        let same = std::fs::read(single.join(rel)).ok() == std::fs::read(sharded.join(rel)).ok();
        assert!(same, "{} differs between the single-node and the sharded run", rel.display());
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sharded.join("manifest.json")).expect("manifest")).expect("json");
    let single_manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(single.join("manifest.json")).expect("manifest")).expect("json");
    for figure in ["documents", "passages", "corpus_tokens", "embedding_tokens"] {
        assert_eq!(manifest["stages"]["chunk"][figure], single_manifest["stages"]["chunk"][figure], "{figure}");
    }
    // Below the sample size no tree was fitted: the shards had nothing to place.
    assert!(manifest["stages"]["fit"].get("fitted_on_sample").is_none() && manifest["stages"]["taxonomy"].get("placed_parts").is_none());
    assert!(manifest["stages"]["keywords"].get("nodes").is_none() && manifest["stages"]["taxonomy"].get("phrase_parts").is_none());
    // At most `subtree_above` passages are one group, chosen in by one shard (the others have
    // none): the reduce took its picks.
    assert!(manifest["stages"]["select"].get("subtrees").is_none(), "{}", manifest["stages"]["select"]);
    assert_eq!(manifest["stages"]["select"]["picked_parts"], 1, "{}", manifest["stages"]["select"]);
    // The index is the shards' indexes merged, with the hits of the index built whole.
    assert_eq!(manifest["stages"]["index"]["merged_parts"], SHARDS, "{}", manifest["stages"]["index"]);
    assert!(single_manifest["stages"]["index"].get("merged_parts").is_none());
    for query in ["heart failure symptoms", "insulin resistance", "treatment of asthma in children"] {
        let hits = |run: &Path| succeeded(strata(&["search", "--run", &path(run), "--mode", "bm25", "--json", "-k", "10", query])).stdout;
        let (ours, theirs) = (hits(&sharded), hits(&single));
        assert!(!theirs.is_empty() && ours == theirs, "{query}: the merged index's hits differ");
    }

    // A shard done on the same inputs is skipped: its manifest (timings included) stays as it was.
    let part = sharded.join("shards/part-00001-of-00004/manifest.json");
    let before = std::fs::read(&part).expect("part manifest");
    succeeded(slurm("map.sbatch", &env(Some(1))));
    assert_eq!(std::fs::read(&part).expect("part manifest"), before, "a done shard ran again");

    // The reduce refuses to merge without every part, naming the shard and what to run.
    std::fs::remove_file(sharded.join("shards/part-00002-of-00004/manifest.json")).expect("rm");
    let o = slurm("reduce.sbatch", &env(None));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("shard 2/4") && err.contains("strata chunk") && err.contains("--shard 2/4"), "{err}");
}

#[test]
fn beyond_the_sample_and_per_subtree_shards_equal_a_single_node_run() {
    // The demo's 40 passages, with the tree fitted on a sample of 20 (every passage placed by
    // descending it after) and the subset chosen per subtree of at most 20 passages.
    let tmp = tempfile::tempdir().expect("tempdir");
    let corpus = tmp.path().join("corpus");
    demo_corpus(&corpus);
    let demo = std::fs::read_to_string(repo().join("pipeline/medicine.toml")).expect("recipe");
    let bounded = demo
        .replace("[taxonomy]\n", "[taxonomy]\nsample_size = 20\n")
        .replace("[select]\n", "[select]\nsubtree_above = 20\n")
        .replace("\"fixtures/", &format!("\"{}/fixtures/", repo().display()));
    assert_ne!(bounded, demo);
    let recipe = tmp.path().join("bounded.toml");
    std::fs::write(&recipe, bounded).expect("write");
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    let run = |out: &Path, extra: &[&str]| {
        let (recipe, corpus, out) = (path(&recipe), path(&corpus), path(out));
        let mut args = vec!["run", "--quiet", "--no-vector-cache", "--recipe", &recipe, "--corpus", &corpus, "--out", &out];
        args.extend_from_slice(extra);
        succeeded(strata(&args))
    };
    run(&single, &[]);
    for shard in ["0/2", "1/2"] {
        run(&sharded, &["--shard", shard]);
    }
    // The tree fitted on the sample, each shard's passages placed in it, then the rest.
    run(&sharded, &["--shards", "2", "--until", "fit"]);
    for shard in ["0/2", "1/2"] {
        let (recipe, corpus, out) = (path(&recipe), path(&corpus), path(&sharded));
        succeeded(strata(&["taxonomy", "--quiet", "--recipe", &recipe, "--corpus", &corpus, "--out", &out, "--shard", shard]));
    }
    // The tree the placements make and its keywords, then each shard's count of the phrases
    // that hold them.
    run(&sharded, &["--shards", "2", "--until", "keywords"]);
    for shard in ["0/2", "1/2"] {
        let (recipe, corpus, out) = (path(&recipe), path(&corpus), path(&sharded));
        succeeded(strata(&["keywords", "--quiet", "--recipe", &recipe, "--corpus", &corpus, "--out", &out, "--shard", shard]));
    }
    // The passages grouped by subtree, each shard choosing in its share of the groups.
    run(&sharded, &["--shards", "2", "--until", "subtrees"]);
    for shard in ["0/2", "1/2"] {
        let (recipe, corpus, out) = (path(&recipe), path(&corpus), path(&sharded));
        succeeded(strata(&["select", "--quiet", "--recipe", &recipe, "--corpus", &corpus, "--out", &out, "--shard", shard]));
    }
    run(&sharded, &["--shards", "2"]);
    for rel in deterministic_files(&single) {
        let same = std::fs::read(single.join(&rel)).ok() == std::fs::read(sharded.join(&rel)).ok();
        assert!(same, "{} differs between the single-node and the sharded run", rel.display());
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(single.join("manifest.json")).expect("manifest")).expect("json");
    let stages = &manifest["stages"];
    assert_eq!((&stages["taxonomy"]["passages"], &stages["taxonomy"]["fitted_on_sample"]), (&40.into(), &20.into()));
    assert!(stages["select"]["subtrees"].as_u64() >= Some(2), "one subtree only: {}", stages["select"]);
    // Level-1 subtrees, those over the bound split further: at least as many groups.
    assert!(stages["select"]["subtrees"].as_u64() >= stages["taxonomy"]["level1_nodes"].as_u64(), "{}", stages["select"]);
    assert!(stages["select"]["selected_passages"].as_u64() > Some(0), "{}", stages["select"]);
    assert_eq!(stages["fit"]["fitted_on_sample"], 20);
    // The taxonomy took the shards' placements, term and phrase counts; no shard indexed its
    // chunks (no `strata index --shard`), so the reduce indexed them all itself.
    let sharded_manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sharded.join("manifest.json")).expect("manifest")).expect("json");
    assert_eq!(sharded_manifest["stages"]["taxonomy"]["placed_parts"], 2, "{}", sharded_manifest["stages"]["taxonomy"]);
    assert_eq!(sharded_manifest["stages"]["taxonomy"]["phrase_parts"], 2, "{}", sharded_manifest["stages"]["taxonomy"]);
    assert_eq!(sharded_manifest["stages"]["keywords"]["nodes"], stages["taxonomy"]["nodes"], "{}", sharded_manifest["stages"]["keywords"]);
    assert_eq!(sharded_manifest["stages"]["select"]["picked_parts"], 2, "{}", sharded_manifest["stages"]["select"]);
    assert!(sharded_manifest["stages"]["index"].get("merged_parts").is_none(), "{}", sharded_manifest["stages"]["index"]);

    // Another seed fits another tree: the shards' placements and picks are of the old one, so
    // the reduce places and chooses itself, and the files are the single-node run's with that seed.
    run(&single, &["--seed", "7"]);
    run(&sharded, &["--shards", "2", "--seed", "7"]);
    let sharded_manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sharded.join("manifest.json")).expect("manifest")).expect("json");
    assert!(sharded_manifest["stages"]["taxonomy"].get("placed_parts").is_none(), "{}", sharded_manifest["stages"]["taxonomy"]);
    assert!(sharded_manifest["stages"]["taxonomy"].get("phrase_parts").is_none(), "{}", sharded_manifest["stages"]["taxonomy"]);
    assert!(sharded_manifest["stages"]["select"].get("picked_parts").is_none(), "{}", sharded_manifest["stages"]["select"]);
    for rel in ["taxonomy.parquet", "taxonomy.json", "work/passage_assignments.parquet", "work/selection.parquet"] {
        assert_eq!(std::fs::read(single.join(rel)).ok(), std::fs::read(sharded.join(rel)).ok(), "{rel} with seed 7");
    }
}

/// The demo corpus as one Parquet file (`id`, `text`) in row groups of 3 rows.
fn parquet_corpus(path: &Path) {
    use arrow::array::{ArrayRef, StringArray};
    let mut docs: Vec<PathBuf> =
        std::fs::read_dir(repo().join("fixtures/medicine")).expect("fixtures").map(|e| e.expect("entry").path()).collect();
    docs.sort();
    let column =
        |f: &dyn Fn(&Path) -> String| std::sync::Arc::new(StringArray::from(docs.iter().map(|p| f(p)).collect::<Vec<_>>())) as ArrayRef;
    let batch = arrow::record_batch::RecordBatch::try_from_iter([
        ("id", column(&|p| p.file_stem().expect("stem").to_string_lossy().into_owned())),
        ("text", column(&|p| std::fs::read_to_string(p).expect("read"))),
    ])
    .expect("batch");
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(3)).build();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).expect("create"), batch.schema(), Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[test]
fn a_parquet_corpus_in_shards_equals_a_single_node_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let corpus = tmp.path().join("docs.parquet");
    parquet_corpus(&corpus);
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();
    let recipe = path(&repo().join("pipeline/medicine.toml"));
    let (single, sharded) = (path(&tmp.path().join("single")), path(&tmp.path().join("sharded")));
    let corpus_arg = path(&corpus);
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec!["run", "--quiet", "--recipe", &recipe, "--corpus", &corpus_arg, "--out", out];
        args.extend_from_slice(extra);
        succeeded(strata(&args))
    };
    run(&single, &[]);
    for shard in ["0/3", "1/3", "2/3"] {
        run(&sharded, &["--shard", shard]);
    }
    run(&sharded, &["--shards", "3"]);
    for rel in [CHUNKS_FILE, PASSAGES_FILE, EMBEDDINGS_FILE, TAXONOMY_FILE, SCPT_FILE] {
        let same = std::fs::read(Path::new(&single).join(rel)).ok() == std::fs::read(Path::new(&sharded).join(rel)).ok();
        assert!(same, "{rel} differs between the single-node and the sharded run");
    }
    // Every shard read row groups of its own: together they hold all 40 documents once.
    let documents: usize = (0..3)
        .map(|i| {
            let part: serde_json::Value = serde_json::from_slice(
                &std::fs::read(Path::new(&sharded).join(format!("shards/part-{i:05}-of-00003/manifest.json"))).expect("part manifest"),
            )
            .expect("json");
            part["stages"]["chunk"]["documents"].as_u64().expect("documents") as usize
        })
        .inspect(|&n| assert!(n > 0, "a shard read no row group"))
        .sum();
    assert_eq!(documents, 40);

    // A part's file damaged after its shard recorded it: a reduce with nothing to merge again
    // reads no part and keeps its files; one that merges again (forced) checks each part as it
    // reads it, fails naming the file, and leaves the merged files as they were.
    let damaged = Path::new(&sharded).join("shards/part-00001-of-00003").join(EMBEDDINGS_FILE);
    let mut bytes = std::fs::read(&damaged).expect("part");
    bytes[100] ^= 0xff;
    std::fs::write(&damaged, bytes).expect("damage");
    run(&sharded, &["--shards", "3"]);
    let merged = std::fs::read(Path::new(&sharded).join(EMBEDDINGS_FILE)).expect("merged");
    let o = strata(&["run", "--quiet", "--recipe", &recipe, "--corpus", &corpus_arg, "--out", &sharded, "--shards", "3", "--force"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("shard 1/3") && err.contains(&damaged.display().to_string()) && err.contains("strata embed --shard 1/3"), "{err}");
    assert_eq!(std::fs::read(Path::new(&sharded).join(EMBEDDINGS_FILE)).expect("merged"), merged, "a failed merge changed the file");
}

#[test]
fn shard_flags_are_checked_before_anything_runs() {
    let recipe = repo().join("pipeline/medicine.toml");
    let recipe = recipe.to_str().expect("utf-8");
    for (args, needle) in [
        (vec!["emit", "--recipe", recipe, "--shard", "0/2"], "map stages"),
        (vec!["run", "--recipe", recipe, "--shard", "2/2"], "below the count"),
        (vec!["run", "--recipe", recipe, "--shard", "1-2"], "I/N"),
        (vec!["run", "--recipe", recipe, "--shard", "0/2", "--shards", "2"], "cannot be used with"),
        (vec!["keywords", "--recipe", recipe], "sharded run"),
    ] {
        let o = strata(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    // A merge before any shard has run says so, and leaves no folder behind.
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("run");
    let o = strata(&["run", "--recipe", recipe, "--out", out.to_str().expect("utf-8"), "--shards", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no shard has run") && stderr(&o).contains("plan-of-00002.json"), "{}", stderr(&o));
    assert!(!out.exists(), "the failed merge left its run directory");
}
