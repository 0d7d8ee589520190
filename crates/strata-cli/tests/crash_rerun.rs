//! Crashes and reruns on half the demo corpus: `strata run` killed (SIGKILL) in each stage
//! leaves only complete files at final paths, and the rerun ends byte-identical to an
//! uninterrupted run; a second run in the same directory meanwhile is refused; a changed
//! corpus file reruns from chunking; thread counts do not change the output.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use strata_core::parquet_io::for_each_batch;
use strata_core::rundir::*;

const STAGES: [&str; 10] = ["chunk", "embed", "fit", "taxonomy", "subtrees", "select", "emit", "index", "cost", "report"];
const PARQUET: [&str; 9] = [WORK_CHUNKS, WORK_DOCUMENTS, EMBEDDINGS, TAXONOMY, WORK_ASSIGNMENTS, WORK_SELECTION, CHUNKS, SCPT, SSFT];
const JSON: [&str; 4] = [MANIFEST, TAXONOMY_JSON, DATASET_INFO, COST];
/// Files a rerun must reproduce byte for byte (cost.json, report.html and the index record
/// timings or segment ids).
const DETERMINISTIC: [&str; 11] =
    [WORK_CHUNKS, WORK_DOCUMENTS, EMBEDDINGS, TAXONOMY, WORK_ASSIGNMENTS, WORK_SELECTION, CHUNKS, SCPT, SSFT, TAXONOMY_JSON, DATASET_INFO];

/// `strata run` of the demo recipe on `corpus` into `out`; vectors are computed afresh, so
/// embedding takes long enough to be interrupted and thread counts matter.
fn demo(corpus: &Path, out: &Path, extra: &[&str]) -> Command {
    let recipe = repo().join("pipeline/medicine.toml");
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(["run", "--no-vector-cache", "--recipe"]).arg(recipe).arg("--corpus").arg(corpus).arg("--out").arg(out).args(extra);
    c.current_dir(repo()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn finish(c: &mut Command) -> String {
    let o = c.output().expect("strata runs");
    assert!(o.status.success(), "strata run failed: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every other document of the demo corpus (20 of 40, every specialty), copied to `to`.
fn copy_demo_corpus(to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    let mut docs: Vec<_> =
        std::fs::read_dir(repo().join("fixtures/medicine")).expect("fixtures").map(|e| e.expect("entry").path()).collect();
    docs.sort();
    for p in docs.iter().step_by(2) {
        std::fs::copy(p, to.join(p.file_name().expect("name"))).expect("copy");
    }
}

/// The stage whose temporary folder exists (its index in [`STAGES`]) and whether it has
/// begun to write its outputs there.
fn running(out: &Path) -> Option<(usize, bool)> {
    STAGES.iter().enumerate().find_map(|(i, s)| {
        let mut entries = std::fs::read_dir(out.join(TMP_DIR).join(s)).ok()?;
        Some((i, entries.next().is_some()))
    })
}

/// Every final file that exists is complete: Parquet files read to the end, JSON parses, the
/// report is whole and the index answers a query.
fn assert_complete(out: &Path) {
    for f in PARQUET.iter().filter(|f| out.join(f).exists()) {
        for_each_batch(&out.join(f), |_| Ok(())).unwrap_or_else(|e| panic!("partial {f}: {e}"));
    }
    for f in JSON.iter().filter(|f| out.join(f).exists()) {
        let bytes = std::fs::read(out.join(f)).expect("read");
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_else(|e| panic!("partial {f}: {e}"));
    }
    if let Ok(html) = std::fs::read_to_string(out.join(REPORT)) {
        assert!(html.trim_end().ends_with("</html>"), "partial {REPORT}");
    }
    if out.join(INDEX_DIR).exists() {
        let o = strata(&["search", "--run", out.to_str().expect("utf-8"), "heart", "-k", "1"]);
        assert!(o.status.success(), "partial {INDEX_DIR}: {}", stderr(&o));
    }
}

/// Kills `child` (SIGKILL) and returns the stage it was in: the one whose temporary folder
/// it left behind, if any.
fn kill(mut child: Child, out: &Path) -> Option<String> {
    child.kill().expect("kill");
    child.wait().expect("wait");
    let tmp = std::fs::read_dir(out.join(TMP_DIR)).ok()?;
    tmp.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).find(|n| STAGES.contains(&n.as_str()))
}

fn assert_same(a: &Path, b: &Path, what: &str) {
    for f in DETERMINISTIC {
        assert!(std::fs::read(a.join(f)).expect("a") == std::fs::read(b.join(f)).expect("b"), "{f} differs: {what}");
    }
}

#[test]
fn killed_in_any_stage_a_rerun_completes_as_if_never_interrupted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let corpus = tmp.path().join("corpus");
    copy_demo_corpus(&corpus);
    let reference = tmp.path().join("reference");
    finish(&mut demo(&corpus, &reference, &[]));

    // Each stage in turn, twice: as it starts, and once it writes its outputs. Every rerun
    // resumes where the last kill left off; when a stage ends between two polls, the kill
    // lands in a later one.
    let out = tmp.path().join("killed");
    let mut kills = Vec::new();
    for (i, stage) in STAGES.iter().enumerate() {
        for writing in [false, true] {
            let mut child = demo(&corpus, &out, &[]).spawn().expect("spawn");
            let reached = |(j, wrote): (usize, bool)| j > i || (j == i && (wrote || !writing));
            while !running(&out).is_some_and(reached) && child.try_wait().expect("wait").is_none() {
                std::thread::sleep(Duration::from_micros(200));
            }
            if *stage == "embed" && !writing {
                let second = demo(&corpus, &out, &[]).output().expect("strata runs");
                assert_eq!(second.status.code(), Some(1), "a second run in the same directory: {}", stderr(&second));
                assert!(stderr(&second).contains("another strata process is writing the run directory"), "{}", stderr(&second));
            }
            kills.push((*stage, writing, kill(child, &out)));
            assert_complete(&out);
        }
    }
    eprintln!("(target stage, writing, killed in): {kills:?}");
    assert!(kills.iter().any(|k| k.2.as_deref() == Some("embed")), "never caught a stage running: {kills:?}");
    finish(&mut demo(&corpus, &out, &[]));
    assert!(!out.join(TMP_DIR).exists());
    assert_same(&reference, &out, "killed in every stage, then rerun");

    // Nothing changed: every stage but the report is skipped. A changed corpus file: every
    // stage runs again, from chunking.
    let again = finish(&mut demo(&corpus, &out, &[]));
    for stage in &STAGES[..7] {
        assert!(again.lines().any(|l| l.starts_with(stage) && l.contains("skipped")), "{stage} not skipped:\n{again}");
    }
    let doc = corpus.join("cardiology-atrial-fibrillation.md");
    let text = std::fs::read_to_string(&doc).expect("read");
    std::fs::write(&doc, text.replace("atrial", "auricular")).expect("write");
    let changed = finish(&mut demo(&corpus, &out, &[]));
    for stage in STAGES {
        assert!(changed.lines().any(|l| l.starts_with(stage) && l.contains("ran")), "{stage} did not rerun:\n{changed}");
    }
}

#[test]
fn one_thread_or_two_give_byte_identical_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let corpus = tmp.path().join("corpus");
    copy_demo_corpus(&corpus);
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    finish(&mut demo(&corpus, &one, &["--threads", "1"]));
    finish(&mut demo(&corpus, &two, &["--threads", "2"]));
    assert_same(&one, &two, "--threads 1 against --threads 2");
}
