//! What the robustness tests share: the binary, and a corpus + recipe in a temporary folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata")).args(args).current_dir(repo()).output().expect("strata runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary folder with `corpus/`, a recipe `recipe.toml` reading it and the run
/// directory `out/run/` (not created).
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub corpus: PathBuf,
    pub out: PathBuf,
    pub recipe: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_recipe("")
    }

    /// `extra` is appended to a minimal recipe (`domain`, `corpus`, `out`).
    pub fn with_recipe(extra: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let corpus = tmp.path().join("corpus");
        std::fs::create_dir(&corpus).expect("corpus");
        let recipe = tmp.path().join("recipe.toml");
        std::fs::write(&recipe, format!("domain = \"test\"\ncorpus = \"corpus\"\nout = \"out/run\"\n{extra}")).expect("recipe");
        let out = tmp.path().join("out/run");
        Self { tmp, corpus, out, recipe }
    }

    /// Writes a corpus file (parents created).
    pub fn file(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.corpus.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        path
    }

    /// A few documents of the demo corpus, copied in.
    pub fn demo_docs(&self, n: usize) {
        let mut names: Vec<_> =
            std::fs::read_dir(repo().join("fixtures/medicine")).expect("fixtures").map(|e| e.expect("entry").path()).collect();
        names.sort();
        for p in names.iter().step_by(names.len() / n).take(n) {
            std::fs::copy(p, self.corpus.join(p.file_name().expect("name"))).expect("copy");
        }
    }

    /// `strata <command> --recipe recipe.toml <extra>`.
    pub fn strata(&self, command: &str, extra: &[&str]) -> Output {
        let mut args = vec![command, "--recipe", self.recipe.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        strata(&args)
    }

    pub fn manifest(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.out.join("manifest.json")).expect("manifest")).expect("json")
    }

    /// Asserts `o` failed with `code` and a message holding every one of `needles`, and that
    /// the run left nothing behind, not even the folders it created.
    pub fn fails_naming(&self, o: &Output, code: i32, needles: &[&str]) {
        let err = stderr(o);
        assert_eq!(o.status.code(), Some(code), "{err}");
        for n in needles {
            assert!(err.contains(n), "message lacks `{n}`: {err}");
        }
        let created = self.tmp.path().join("out");
        assert!(!created.exists(), "a failed run left {:?} behind", files_under(&created));
    }
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.symlink_metadata().expect("meta").is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("prefix").to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}
