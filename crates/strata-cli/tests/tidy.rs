//! The workspace's rules that no compiler checks, checked over the source files (in the manner
//! of rust-analyzer's tidy test): stage crates depend on strata-core alone; only strata-cli
//! prints or reads the environment; only strata-core's `rundir` names run files; every file
//! opens with a `//!` header; every dependency a crate lists is used; no function runs over
//! 80 lines without saying why. Needs no model: part of `make test-fast`.

use std::path::{Path, PathBuf};

const STAGE_CRATES: &[&str] =
    &["strata-chunk", "strata-embed", "strata-taxonomy", "strata-select", "strata-emit", "strata-index", "strata-cost", "strata-report"];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crates/").to_path_buf()
}

fn crate_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(crates_dir())
        .expect("crates/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("strata-"))
        .collect();
    names.sort();
    names
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                out.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names of one `[section]` of a Cargo.toml (`[dependencies]`, `[dev-dependencies]`).
fn dependencies(manifest: &str, section: &str) -> Vec<String> {
    let mut inside = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == section;
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

/// The source text of a file with its `#[cfg(test)]` module cut off (tests may print, read
/// the environment and name files).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

#[test]
fn stage_crates_depend_on_strata_core_alone() {
    for name in STAGE_CRATES {
        let manifest = read(&crates_dir().join(name).join("Cargo.toml"));
        let workspace: Vec<String> = dependencies(&manifest, "[dependencies]").into_iter().filter(|d| d.starts_with("strata-")).collect();
        assert_eq!(workspace, ["strata-core"], "{name} depends on {workspace:?}: stage crates read each other's files, never code");
    }
}

#[test]
fn only_the_cli_prints_or_reads_the_environment() {
    let forbidden = ["println!", "eprintln!", "print!(", "eprint!(", "dbg!(", "std::env::var", "env::var(", "env::var_os("];
    let mut offenders = Vec::new();
    for name in crate_names().iter().filter(|n| *n != "strata-cli") {
        for file in rust_files(&crates_dir().join(name).join("src")) {
            let text = read(&file);
            for bad in forbidden.iter().filter(|b| without_tests(&text).contains(*b)) {
                offenders.push(format!("{}: {bad}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "only strata-cli prints and reads the environment:\n{}", offenders.join("\n"));
}

/// The file names `rundir.rs` declares (`pub const X: &str = "train/scpt.parquet";`), and
/// their last parts ("scpt.parquet"), the folders left out.
fn run_file_names() -> Vec<String> {
    let rundir = read(&crates_dir().join("strata-core/src/rundir.rs"));
    let mut names: Vec<String> = rundir
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const ")?.split_once("= \"").map(|(_, v)| v.trim_end_matches("\";").to_string()))
        .filter(|v| v.contains('.'))
        .flat_map(|v| [v.rsplit('/').next().unwrap_or(&v).to_string(), v.clone()])
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn only_rundir_names_run_files() {
    let names = run_file_names();
    assert!(names.iter().any(|n| n == "scpt.parquet") && names.iter().any(|n| n == "manifest.json"), "{names:?}");
    let mut offenders = Vec::new();
    for name in crate_names() {
        for file in rust_files(&crates_dir().join(name).join("src")) {
            if file.ends_with("strata-core/src/rundir.rs") {
                continue;
            }
            let text = read(&file);
            for line in without_tests(&text).lines().filter(|l| !l.trim_start().starts_with("//")) {
                if names.iter().any(|n| line.contains(&format!("\"{n}\""))) {
                    offenders.push(format!("{}: {}", file.display(), line.trim()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "run file names belong in strata_core::rundir:\n{}", offenders.join("\n"));
}

#[test]
fn every_file_opens_with_a_header() {
    let mut offenders = Vec::new();
    for name in crate_names() {
        for dir in ["src", "tests", "examples"] {
            for file in rust_files(&crates_dir().join(&name).join(dir)) {
                if !read(&file).starts_with("//!") {
                    offenders.push(file.display().to_string());
                }
            }
        }
    }
    assert!(offenders.is_empty(), "files without a `//!` header:\n{}", offenders.join("\n"));
}

#[test]
fn every_listed_dependency_is_used() {
    let mut unused = Vec::new();
    for name in crate_names() {
        let dir = crates_dir().join(&name);
        let manifest = read(&dir.join("Cargo.toml"));
        let text_of = |dirs: &[&str]| dirs.iter().flat_map(|d| rust_files(&dir.join(d))).map(|f| read(&f)).collect::<String>();
        let (library, everything) = (text_of(&["src"]), text_of(&["src", "tests", "examples", "benches"]));
        for (section, text) in [("[dependencies]", &library), ("[dev-dependencies]", &everything)] {
            for dep in dependencies(&manifest, section) {
                let ident = dep.replace('-', "_");
                let used = [format!("{ident}::"), format!("use {ident}"), format!("{ident}!"), format!("extern crate {ident}")]
                    .iter()
                    .any(|p| text.contains(p.as_str()));
                if !used {
                    unused.push(format!("{name} {section} {dep}"));
                }
            }
        }
    }
    assert!(unused.is_empty(), "dependencies listed but never used:\n{}", unused.join("\n"));
}

/// A function longer than this must say why in the comment above it ("Long: ...").
const MAX_FUNCTION_LINES: usize = 80;

#[test]
fn functions_stay_short_or_say_why() {
    let mut long = Vec::new();
    for name in crate_names() {
        for file in rust_files(&crates_dir().join(name).join("src")) {
            let text = read(&file);
            let lines: Vec<&str> = text.lines().collect();
            for (start, line) in lines.iter().enumerate() {
                let code = line.trim_start();
                let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "async fn ", "pub async fn "].iter().any(|p| code.starts_with(p));
                if !is_fn || code.ends_with(';') {
                    continue;
                }
                let length = function_length(&lines[start..]);
                let said_why = lines[..start]
                    .iter()
                    .rev()
                    .take_while(|l| l.trim_start().starts_with("///") || l.trim_start().starts_with("#["))
                    .any(|l| l.contains("Long:"));
                if length > MAX_FUNCTION_LINES && !said_why {
                    long.push(format!("{}:{} ({length} lines)", file.display(), start + 1));
                }
            }
        }
    }
    assert!(long.is_empty(), "functions over {MAX_FUNCTION_LINES} lines without a `Long:` reason:\n{}", long.join("\n"));
}

/// Lines from a function's signature to its closing brace, by counting braces outside string
/// and character literals and comments.
fn function_length(lines: &[&str]) -> usize {
    let mut depth = 0i32;
    let mut opened = false;
    for (n, line) in lines.iter().enumerate() {
        let mut chars = line.chars().peekable();
        let mut in_string = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' if in_string => {
                    chars.next();
                }
                '"' => in_string = !in_string,
                '/' if !in_string && chars.peek() == Some(&'/') => break,
                '\'' if !in_string => {
                    // A char literal ('{', '\'') is skipped; a lifetime ('a) is not one.
                    let rest: String = chars.clone().take(3).collect();
                    if rest.starts_with('\\') {
                        chars.nth(2);
                    } else if rest.chars().nth(1) == Some('\'') {
                        chars.nth(1);
                    }
                }
                '{' if !in_string => {
                    depth += 1;
                    opened = true;
                }
                '}' if !in_string => depth -= 1,
                _ => {}
            }
        }
        if opened && depth <= 0 {
            return n + 1;
        }
    }
    lines.len()
}
