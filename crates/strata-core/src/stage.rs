//! The stage trait and the runner that gives every stage the same guarantees: its outputs are
//! assembled in a temporary folder and renamed into place (complete or absent, never half
//! written), its record in the manifest carries content hashes, and a stage whose inputs and
//! configuration are unchanged is skipped.

use crate::hash::{path_sha256, sha256_hex};
use crate::manifest::{Manifest, ManifestError, StageRun};
use crate::rundir::{RunDir, MANIFEST, TMP_DIR};
use crate::summary::{StageName, StageSummary};
use crate::Progress;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Errors a stage returns; each stage crate has its own `thiserror` enum behind this box.
pub type StageError = Box<dyn std::error::Error + Send + Sync>;

/// What a stage reports besides its files.
#[derive(Debug)]
pub struct StageStats {
    pub rows_in: u64,
    pub rows_out: u64,
    /// The stage's own figures, recorded in the manifest under the stage.
    pub summary: StageSummary,
}

/// Where a stage reads and writes.
pub struct StageContext<'a> {
    /// The run directory: read the files of earlier stages with `run.path(...)`.
    pub run: &'a RunDir,
    out: PathBuf,
    pub progress: &'a dyn Progress,
    /// The manifest as the earlier stages left it (their summaries: corpus totals, budget).
    pub manifest: &'a Manifest,
}

impl<'a> StageContext<'a> {
    /// A context whose outputs go to `out`: what `run_stage` gives a stage (and a test).
    pub fn new(run: &'a RunDir, out: PathBuf, progress: &'a dyn Progress, manifest: &'a Manifest) -> Self {
        Self { run, out, progress, manifest }
    }

    /// The path to write the run file `rel` to (inside the temporary folder); parents exist.
    pub fn output(&self, rel: &str) -> std::io::Result<PathBuf> {
        let p = self.out.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(p)
    }

    /// An unnamed file in the stage's temporary folder, for data too large to hold; the system
    /// removes it when it is closed, and the folder goes when the stage ends, however it ends.
    pub fn scratch_file(&self) -> std::io::Result<std::fs::File> {
        tempfile::tempfile_in(&self.out)
    }
}

/// One step of the pipeline.
pub trait Stage {
    /// Name in the manifest and in messages.
    fn name(&self) -> StageName;
    /// Run files this stage reads (written by earlier stages).
    fn reads(&self) -> Vec<&'static str>;
    /// Run files or folders this stage writes.
    fn writes(&self) -> Vec<&'static str>;
    /// Everything else the output depends on: configuration, model, external inputs.
    fn fingerprint(&self) -> Result<Value, StageError>;
    /// Does the work, writing each of `writes()` through `ctx.output(...)`.
    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError>;
}

/// `stage` with its own fingerprint computed once, for asking many run directories (a sharded
/// run's parts) whether the same stage is done there: the embed stage's hashes the model.
pub struct FingerprintedOnce<'a> {
    stage: &'a dyn Stage,
    own: Value,
}

impl<'a> FingerprintedOnce<'a> {
    pub fn new(stage: &'a dyn Stage) -> Result<Self, StageError> {
        Ok(Self { stage, own: stage.fingerprint()? })
    }
}

impl Stage for FingerprintedOnce<'_> {
    fn name(&self) -> StageName {
        self.stage.name()
    }
    fn reads(&self) -> Vec<&'static str> {
        self.stage.reads()
    }
    fn writes(&self) -> Vec<&'static str> {
        self.stage.writes()
    }
    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(self.own.clone())
    }
    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.stage.run(ctx)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("stage `{stage}` failed")]
    Stage {
        stage: StageName,
        #[source]
        source: StageError,
    },
    #[error("stage `{stage}`: `{path}` is missing; run the earlier stages first")]
    MissingInput { stage: StageName, path: PathBuf },
    #[error("stage `{stage}` did not write `{path}`")]
    MissingOutput { stage: StageName, path: PathBuf },
    #[error("stage `{stage}` reported the summary of stage `{reported}` (a bug in the stage)")]
    WrongSummary { stage: StageName, reported: StageName },
    #[error("failed to prepare or move files in the run directory `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// Whether a stage ran or was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ran,
    Skipped,
}

/// Runs `stage` in `run` (or skips it when its fingerprint and outputs are unchanged) and
/// records it in `manifest`, which is saved after every stage.
pub fn run_stage(
    run: &RunDir,
    manifest: &mut Manifest,
    stage: &dyn Stage,
    progress: &dyn Progress,
    force: bool,
) -> Result<Outcome, RunError> {
    let name = stage.name();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::Io { path, source }
    };
    let fingerprint = fingerprint(run, manifest, stage)?;
    let retry = manifest.stages.summary(name).is_some_and(|s| s.retry_next_run());
    if retry {
        tracing::info!(stage = name.as_str(), "LLM calls failed in transit last time: the stage runs again, its replies from the cache");
    }
    if !force && !name.always_reruns() && !retry && is_current(run, manifest.stages.run(name), &fingerprint) {
        tracing::info!(stage = name.as_str(), "unchanged inputs and configuration: skipped");
        return Ok(Outcome::Skipped);
    }

    let tmp = run.path(TMP_DIR).join(name.as_str());
    remove_if_present(&tmp).map_err(io(&tmp))?;
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let started = Instant::now();
    let ctx = StageContext::new(run, tmp.clone(), progress, manifest);
    let done = stage
        .run(&ctx)
        .map_err(|source| RunError::Stage { stage: name, source })
        .and_then(|stats| match stats.summary.stage() {
            reported if reported != name => Err(RunError::WrongSummary { stage: name, reported }),
            _ => Ok(stats),
        })
        .and_then(|stats| Ok((stats, hash_outputs(run, stage, &tmp)?)))
        .and_then(|done| {
            stage.writes().iter().try_for_each(|rel| sync_tree(&tmp.join(rel)).map_err(io(&tmp.join(rel))))?;
            Ok(done)
        });
    let seconds = started.elapsed().as_secs_f64();
    // A failed stage leaves nothing behind; earlier stages' outputs stay, complete.
    let (stats, outputs) = done.inspect_err(|_| {
        let _ = remove_if_present(&tmp);
        let _ = std::fs::remove_dir(run.path(TMP_DIR));
    })?;
    for rel in stage.writes() {
        let to = run.path(rel);
        move_into_place(&tmp.join(rel), &to, &tmp.join(".old")).map_err(io(&to))?;
        // The rename itself is durable once the folder that holds it is synced.
        sync_dir(to.parent().unwrap_or(run.root())).map_err(io(&to))?;
    }
    std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    let _ = std::fs::remove_dir(run.path(TMP_DIR));

    let record =
        StageRun { fingerprint, seconds: (seconds * 1000.0).round() / 1000.0, rows_in: stats.rows_in, rows_out: stats.rows_out, outputs };
    manifest.stages.insert(record, stats.summary);
    manifest.save(&run.path(MANIFEST))?;
    Ok(Outcome::Ran)
}

/// Whether the manifest records `stage` as run in `run` on its present inputs and
/// configuration, every output it recorded on disk. It reads no output: what a sharded run's
/// reduce asks of each part before anything runs; the merges check the outputs' hashes as they
/// read them (`Parts::verify`).
pub fn is_recorded(run: &RunDir, manifest: &Manifest, stage: &dyn Stage) -> Result<bool, RunError> {
    let fingerprint = fingerprint(run, manifest, stage)?;
    let Some(record) = manifest.stages.run(stage.name()) else { return Ok(false) };
    Ok(record.fingerprint == fingerprint && !record.outputs.is_empty() && record.outputs.keys().all(|rel| run.path(rel).exists()))
}

/// The content hash of each output the stage wrote into `tmp`; all must exist.
fn hash_outputs(run: &RunDir, stage: &dyn Stage, tmp: &Path) -> Result<BTreeMap<String, String>, RunError> {
    let mut outputs = BTreeMap::new();
    for rel in stage.writes() {
        let from = tmp.join(rel);
        if !from.exists() {
            return Err(RunError::MissingOutput { stage: stage.name(), path: run.path(rel) });
        }
        let hash = path_sha256(&from).map_err(|source| RunError::Io { path: from.clone(), source })?;
        outputs.insert(rel.to_string(), hash);
    }
    Ok(outputs)
}

/// Renames `from` to `to`. A file replaces the old one in one step; a folder cannot, so the
/// old folder is first renamed aside to `aside` (then `to` is briefly absent, never partial).
fn move_into_place(from: &Path, to: &Path, aside: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if to.is_dir() {
        remove_if_present(aside)?;
        std::fs::rename(to, aside)?;
    }
    std::fs::rename(from, to)?;
    remove_if_present(aside)
}

/// Flushes a written file, or every file and folder under a written folder, to the disk, so
/// that after a power cut an output renamed into place is whole (tantivy does the same for
/// its commits).
fn sync_tree(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            sync_tree(&entry?.path())?;
        }
        sync_dir(path)
    } else {
        std::fs::File::open(path)?.sync_all()
    }
}

/// Flushes a folder's entries (names created or renamed in it) to the disk.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Hash of the stage's name, the tool and schema versions, its own fingerprint, and the
/// content hashes of the run files it reads.
fn fingerprint(run: &RunDir, manifest: &Manifest, stage: &dyn Stage) -> Result<String, RunError> {
    let name = stage.name();
    let own = stage.fingerprint().map_err(|source| RunError::Stage { stage: name, source })?;
    let mut inputs = Map::new();
    for rel in stage.reads() {
        let path = run.path(rel);
        if !path.exists() {
            return Err(RunError::MissingInput { stage: name, path });
        }
        let recorded = manifest.stages.iter().find_map(|(_, s)| s.outputs.get(rel).cloned());
        let hash = match recorded {
            Some(h) => h,
            None => path_sha256(&path).map_err(|source| RunError::Io { path: path.clone(), source })?,
        };
        inputs.insert(rel.to_string(), Value::String(hash));
    }
    let all = serde_json::json!({
        "stage": name.as_str(),
        "tool": crate::TOOL_VERSION,
        "schema": crate::SCHEMA_VERSION,
        "own": own,
        "inputs": inputs,
    });
    Ok(sha256_hex(all.to_string().as_bytes()))
}

/// A stage is current when its fingerprint matches and every output is on disk unchanged.
fn is_current(run: &RunDir, record: Option<&StageRun>, fingerprint: &str) -> bool {
    let Some(record) = record else { return false };
    record.fingerprint == fingerprint
        && !record.outputs.is_empty()
        && record.outputs.iter().all(|(rel, hash)| path_sha256(&run.path(rel)).map(|h| &h == hash).unwrap_or(false))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;

    /// Writes `out.txt` and `dir/a.txt` holding `text`, then fails if asked to.
    struct Fake {
        text: &'static str,
        fail: bool,
    }

    impl Stage for Fake {
        fn name(&self) -> StageName {
            StageName::Index
        }
        fn reads(&self) -> Vec<&'static str> {
            Vec::new()
        }
        fn writes(&self) -> Vec<&'static str> {
            vec!["out.txt", "dir"]
        }
        fn fingerprint(&self) -> Result<Value, StageError> {
            Ok(Value::String(self.text.into()))
        }
        fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
            std::fs::write(ctx.output("out.txt")?, self.text)?;
            std::fs::write(ctx.output("dir/a.txt")?, self.text)?;
            if self.fail {
                return Err("boom".into());
            }
            Ok(StageStats { rows_in: 1, rows_out: 2, summary: StageSummary::Index(Default::default()) })
        }
    }

    #[test]
    fn outputs_are_replaced_whole_and_a_failed_stage_leaves_the_previous_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(tmp.path());
        let mut manifest = Manifest::new(Value::Null);
        let mut go = |text, fail| run_stage(&run, &mut manifest, &Fake { text, fail }, &NoProgress, false);
        let read = |rel: &str| std::fs::read_to_string(tmp.path().join(rel)).expect("read");

        assert_eq!(go("one", false).expect("ran"), Outcome::Ran);
        assert_eq!(go("one", false).expect("skipped"), Outcome::Skipped);
        assert!(go("two", true).is_err());
        assert_eq!((read("out.txt"), read("dir/a.txt")), ("one".into(), "one".into()));
        assert!(!tmp.path().join(TMP_DIR).exists(), "the failed stage left its temporary folder");
        assert_eq!(go("two", false).expect("ran"), Outcome::Ran);
        assert_eq!((read("out.txt"), read("dir/a.txt")), ("two".into(), "two".into()));
        let mut names: Vec<_> = std::fs::read_dir(tmp.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        names.sort();
        assert_eq!(names, ["dir", "manifest.json", "out.txt"]);
        let record = manifest.stages.run(StageName::Index).expect("recorded");
        assert_eq!((record.rows_in, record.rows_out, record.outputs.len()), (1, 2, 2));
    }

    /// Reports the summary of another stage.
    struct Confused;

    impl Stage for Confused {
        fn name(&self) -> StageName {
            StageName::Emit
        }
        fn reads(&self) -> Vec<&'static str> {
            Vec::new()
        }
        fn writes(&self) -> Vec<&'static str> {
            vec!["out.txt"]
        }
        fn fingerprint(&self) -> Result<Value, StageError> {
            Ok(Value::Null)
        }
        fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
            std::fs::write(ctx.output("out.txt")?, "x")?;
            Ok(StageStats { rows_in: 0, rows_out: 0, summary: StageSummary::Index(Default::default()) })
        }
    }

    #[test]
    fn a_summary_of_another_stage_is_refused_and_nothing_is_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(tmp.path());
        let mut manifest = Manifest::new(Value::Null);
        let err = run_stage(&run, &mut manifest, &Confused, &NoProgress, false).expect_err("wrong summary");
        assert!(matches!(err, RunError::WrongSummary { stage: StageName::Emit, reported: StageName::Index }), "{err}");
        assert!(!tmp.path().join("out.txt").exists() && manifest.stages.emit.is_none());
    }
}
