//! The optional LLM against a real OpenAI-compatible server on loopback: llama.cpp's, through
//! the `llama-cpp-python[server]` package, serving a tiny model with random weights that the
//! test writes itself (`tools/llm/tiny_model.py`; nothing downloaded). Its text is nonsense;
//! what is tested is the real path from recipe to request, JSON-schema grammar, checks, reply
//! cache, manifest, ledger and training files. The server is started on 127.0.0.1 by each
//! test and killed by its process id, whatever happens.
//!
//! These tests need the server's Python environment: `make test-llm` prepares it and runs
//! them (`STRATA_LLM_PYTHON` names its interpreter). The endpoint that never answers needs no
//! server and runs in `make test`.

mod common;

use common::*;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use strata_core::parquet_io::read_rows;
use strata_core::records::{Sample, TaxonomyNode};

const SECRET: &str = "sk-strata-test-secret-7f3a";

/// The Python of the server's environment, from `make test-llm`.
fn python() -> PathBuf {
    PathBuf::from(std::env::var_os("STRATA_LLM_PYTHON").expect("STRATA_LLM_PYTHON is not set: run these tests with `make test-llm`"))
}

/// A port nothing listens on now (the system's choice).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Writes the tiny random-weight model to `path`.
fn tiny_model(path: &Path) {
    let o = Command::new(python()).arg(repo().join("tools/llm/tiny_model.py")).arg(path).output().expect("python runs");
    assert!(o.status.success(), "tiny_model.py failed: {}", stderr(&o));
}

/// llama-cpp-python's OpenAI-compatible server on 127.0.0.1, killed by its pid when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn start(model: &Path, port: u16, log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("log");
        let child = Command::new(python())
            .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "32768"])
            .args(["--model_alias", "tiny", "--model"])
            .arg(model)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the server starts");
        let mut server = Self { child };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(server.child.try_wait().expect("wait").is_none(), "the server exited while starting");
            assert!(started.elapsed() < Duration::from_secs(120), "the server did not listen within 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The demo recipe with its paths made absolute, its run in `dir/out`, and an `[llm]` section
/// for the server on `port` (`llm` adds to it; a few defaults of the tests' own unless `llm`
/// sets them).
fn write_recipe(dir: &Path, port: u16, llm: &str) -> PathBuf {
    let repo = repo().canonicalize().expect("repo");
    let text = std::fs::read_to_string(repo.join("pipeline/medicine.toml")).expect("demo recipe");
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some(("corpus", _)) => format!("corpus = \"{}\"", repo.join("fixtures/medicine").display()),
            Some(("out", _)) => format!("out = \"{}\"", dir.join("out").display()),
            Some(("questions", _)) => format!("questions = \"{}\"", repo.join("fixtures/questions/medicine.jsonl").display()),
            _ => l.to_string(),
        })
        .collect();
    // llama-cpp-python takes the schema as `json_object` with a `schema`, not as `json_schema`.
    let defaults = [("structured_output", "\"json_object\""), ("timeout_s", "60"), ("max_retries", "1")];
    let defaults: String = defaults.iter().filter(|(k, _)| !llm.contains(k)).map(|(k, v)| format!("{k} = {v}\n")).collect();
    lines.push(format!("\n[llm]\nendpoint = \"http://127.0.0.1:{port}/v1\"\nmodel = \"tiny\"\n{defaults}{llm}"));
    let path = dir.join("recipe.toml");
    std::fs::write(&path, lines.join("\n")).expect("recipe");
    path
}

/// One test's folder: the recipe (the demo's, with an `[llm]` section for a server on `port`),
/// the run directory `out/` and the reply cache `cache/`.
struct Case {
    tmp: tempfile::TempDir,
    port: u16,
    recipe: PathBuf,
    out: PathBuf,
    cache: PathBuf,
}

impl Case {
    /// `llm` adds to the recipe's `[llm]` section.
    fn new(llm: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let recipe = write_recipe(tmp.path(), port, llm);
        let (out, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
        Self { tmp, port, recipe, out, cache }
    }

    /// A server on the recipe's port serving the tiny model (written on first use), its log in `log`.
    fn serve(&self, log: &str) -> Server {
        let model = self.tmp.path().join("tiny.gguf");
        if !model.exists() {
            tiny_model(&model);
        }
        Server::start(&model, self.port, &self.tmp.path().join(log))
    }

    /// `strata run` of the recipe, caching replies in `cache/`, with an API key in the environment.
    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.args(["run", "--recipe"]).arg(&self.recipe);
        c.env("STRATA_LLM_CACHE", &self.cache).env("STRATA_LLM_API_KEY", SECRET).current_dir(repo());
        c
    }

    fn run(&self) -> Output {
        self.command().output().expect("strata runs")
    }
}

fn succeeded(o: Output) -> Output {
    assert!(o.status.success(), "strata failed: {}", stderr(&o));
    o
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest")).expect("json")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The files a rerun must give byte for byte (not the manifest, ledger, report or the tantivy
/// index, which hold timings or segment ids).
fn contract_bytes(out: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(out)
        .into_iter()
        .filter(|p| !p.starts_with(out.join("index")))
        .filter(|p| !["manifest.json", "cost.json", "report.html"].iter().any(|n| p.ends_with(n)))
        .map(|p| (p.strip_prefix(out).expect("inside").to_path_buf(), std::fs::read(&p).expect("read")))
        .collect()
}

fn replies_cached(cache: &Path) -> usize {
    if cache.exists() {
        files_under(cache).iter().filter(|p| p.extension().is_some_and(|e| e == "json")).count()
    } else {
        0
    }
}

/// `ssft_qa` with its `origin` column.
#[derive(Deserialize)]
struct QaRow {
    kind: String,
    response: String,
    passage_id: Option<String>,
    origin: String,
}

fn counts(calls: &serde_json::Value, key: &str) -> u64 {
    calls[key].as_u64().unwrap_or_else(|| panic!("`{key}` missing in {calls}"))
}

#[test]
#[ignore = "needs llama-cpp-python's server: make test-llm"]
fn titles_and_questions_come_from_the_server_and_a_rerun_from_the_cache_alone() {
    let case = Case::new("qa_share = 0.5\nqa_per_passage = 1\nmax_concurrency = 2\n");
    let mut server = case.serve("server.log");
    succeeded(case.run());

    // Titles: one request per inner node; the label is the title where it passed the checks,
    // the keyword label is kept beside it, and every path follows the labels.
    let m = manifest(&case.out);
    let titles = &m["stages"]["taxonomy"]["llm_titles"];
    let nodes: Vec<TaxonomyNode> = read_rows(&case.out.join("taxonomy.parquet")).expect("taxonomy");
    let inner: BTreeSet<u32> = nodes.iter().filter_map(|n| n.parent_id).collect();
    assert_eq!(counts(titles, "requests"), inner.len() as u64, "{titles}");
    assert_eq!((counts(titles, "cached"), counts(titles, "transient_failures")), (0, 0), "{titles}");
    assert!(counts(titles, "prompt_tokens") > 0 && counts(titles, "completion_tokens") > 0, "{titles}");
    assert!(nodes.iter().all(|n| n.keyword_label.is_some()), "keyword_label on every node");
    assert_eq!(nodes[0].label, "medicine");
    let titled = nodes.iter().filter(|n| n.keyword_label.as_deref() != Some(n.label.as_str())).count();
    assert!(titled > 0, "no title passed the checks");
    for n in &nodes[1..] {
        let parent = &nodes[n.parent_id.expect("parent") as usize];
        assert_eq!(n.path.last(), Some(&n.label));
        assert_eq!(&n.path[..n.path.len() - 1], &parent.path[..], "node {} path follows its parent's", n.node_id);
        assert!(n.label.split_whitespace().count() <= 8 && n.label != parent.label, "{n:?}");
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(case.out.join("taxonomy.json")).expect("json")).expect("json");
    let sources: BTreeSet<&str> =
        json["root"]["children"].as_array().expect("children").iter().filter_map(|c| c["label_source"].as_str()).collect();
    assert!(sources.contains("llm"), "{sources:?}");

    // Question answering: the questions file's samples and the LLM's, marked by origin, in
    // StructTuning's layout.
    let emit = &m["stages"]["emit"];
    let (qa, written) = (&emit["llm_qa"], counts(emit, "llm_qa_samples"));
    let selected = counts(&m["stages"]["select"], "selected_passages");
    assert!(counts(qa, "requests") > 0 && counts(qa, "requests") < selected, "half of {selected} passages drawn: {qa}");
    assert_eq!(counts(qa, "transient_failures"), 0, "{qa}");
    let rows: Vec<QaRow> = read_rows(&case.out.join("train/ssft_qa.parquet")).expect("ssft_qa");
    let by_origin = |o: &str| rows.iter().filter(|r| r.origin == o).collect::<Vec<_>>();
    let (from_llm, from_file) = (by_origin("llm"), by_origin("questions"));
    assert_eq!(from_llm.len() as u64, written);
    assert_eq!(from_llm.len() + from_file.len(), rows.len(), "every row has an origin");
    assert!(written > 0 && !from_file.is_empty(), "{written} LLM samples, {} from the file", from_file.len());
    for pair in from_llm.chunks(2) {
        assert_eq!((pair[0].kind.as_str(), pair[1].kind.as_str()), ("qa", "qa_structure"));
        assert!(pair[1].response.starts_with("Here is the knowledge structure regarding "), "{}", pair[1].response);
        assert!(pair[1].response.ends_with(&format!("Overall, the answer is:\n\n{}", pair[0].response)));
        assert!(pair[0].passage_id.is_some());
    }
    let samples: Vec<Sample> = read_rows(&case.out.join("train/ssft.parquet")).expect("ssft");
    assert!(samples.iter().all(|s| s.origin.is_none()), "only ssft_qa has an origin");

    // The ledger counts the calls and tokens; the API key is in no output and no cache file.
    let ledger: serde_json::Value = serde_json::from_slice(&std::fs::read(case.out.join("cost.json")).expect("cost")).expect("json");
    assert_eq!(ledger["llm"]["qa_passages"], qa["requests"]);
    assert_eq!(ledger["llm"]["titles"]["completion_tokens"], titles["completion_tokens"]);
    assert!(ledger["llm"]["qa_completion_tokens_per_1k_passages"].as_f64().is_some_and(|t| t > 0.0), "{}", ledger["llm"]);
    for file in files_under(&case.out).into_iter().chain(files_under(&case.cache)) {
        let bytes = std::fs::read(&file).expect("read");
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "the API key is in {}", file.display());
    }

    // A rerun from scratch with the server gone: every reply from the cache, the same files.
    let first = contract_bytes(&case.out);
    server.kill();
    std::fs::remove_dir_all(&case.out).expect("rm out");
    succeeded(case.run());
    let m = manifest(&case.out);
    for calls in [&m["stages"]["taxonomy"]["llm_titles"], &m["stages"]["emit"]["llm_qa"]] {
        // Every reply was cached, those that failed the checks too: none is asked again.
        assert_eq!(counts(calls, "cached"), counts(calls, "requests"), "{calls}");
    }
    assert_eq!(contract_bytes(&case.out), first, "a rerun from the cache gives the same files");
}

#[test]
#[ignore = "needs llama-cpp-python's server: make test-llm"]
fn a_server_killed_mid_run_leaves_counted_failures_that_a_rerun_completes_from_the_cache() {
    let case = Case::new("qa_share = 1.0\nqa_per_passage = 1\nmax_concurrency = 1\n");
    let mut server = case.serve("server.log");

    // The server is killed once the titles and two question replies are cached.
    let mut strata = case.command().stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("strata starts");
    let started = Instant::now();
    while replies_cached(&case.cache) < 6 {
        assert!(strata.try_wait().expect("wait").is_none(), "strata ended before the server was killed");
        assert!(started.elapsed() < Duration::from_secs(300), "no replies after 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    let o = strata.wait_with_output().expect("strata ends");
    succeeded(o);
    let m = manifest(&case.out);
    let qa = &m["stages"]["emit"]["llm_qa"];
    let selected = counts(&m["stages"]["select"], "selected_passages");
    assert_eq!(counts(qa, "requests"), selected, "{qa}");
    assert!(qa["failures"]["unreachable"].as_u64().is_some_and(|n| n > 0), "failed calls are counted by kind: {qa}");
    assert!(counts(qa, "transient_failures") > 0, "{qa}");
    let qa_file = case.out.join("train/ssft_qa.parquet");
    let partial = std::fs::read(&qa_file).expect("ssft_qa written with the replies that came");

    // The endpoint still down: the emit stage must run again, cannot, and says which endpoint;
    // the files of the last run stay whole.
    let o = case.run();
    assert!(!o.status.success(), "a rerun with calls to make and no server fails");
    let endpoint = format!("http://127.0.0.1:{}/v1", case.port);
    assert!(stderr(&o).contains(&endpoint), "the error names the endpoint: {}", stderr(&o));
    assert_eq!(std::fs::read(&qa_file).expect("still there"), partial);

    // The server back: only the calls that failed are made, then nothing is left to retry.
    let _server = case.serve("server2.log");
    let before = replies_cached(&case.cache);
    succeeded(case.run());
    let m = manifest(&case.out);
    let qa = &m["stages"]["emit"]["llm_qa"];
    assert_eq!(counts(qa, "transient_failures"), 0, "{qa}");
    assert_eq!(counts(qa, "requests") - counts(qa, "cached"), (replies_cached(&case.cache) - before) as u64, "{qa}");
    assert!(counts(qa, "cached") >= 2, "the replies from before the crash are reused: {qa}");
    let done = contract_bytes(&case.out);
    let o = succeeded(case.run());
    assert!(String::from_utf8_lossy(&o.stdout).contains("emit       skipped"), "nothing left to retry: the stage is current");

    // Crash-then-rerun gives the files a run from the cache alone gives.
    std::fs::remove_dir_all(&case.out).expect("rm out");
    succeeded(case.run());
    assert_eq!(contract_bytes(&case.out), done);
}

#[test]
#[ignore = "needs llama-cpp-python's server: make test-llm"]
fn replies_that_break_the_schema_are_counted_and_the_keyword_labels_stay() {
    // Without the grammar, the random model writes no JSON at all.
    let case = Case::new("structured_output = \"prompt\"\nqa_share = 0.3\nqa_per_passage = 1\nmax_concurrency = 2\n");
    let _server = case.serve("server.log");
    let o = succeeded(case.run());
    let m = manifest(&case.out);
    for calls in [&m["stages"]["taxonomy"]["llm_titles"], &m["stages"]["emit"]["llm_qa"]] {
        assert!(counts(calls, "requests") > 0, "{calls}");
        assert_eq!(calls["failures"]["invalid_json"], calls["requests"], "every reply is invalid JSON: {calls}");
        assert_eq!(counts(calls, "transient_failures"), 0, "{calls}");
    }
    let nodes: Vec<TaxonomyNode> = read_rows(&case.out.join("taxonomy.parquet")).expect("taxonomy");
    assert!(nodes.iter().all(|n| n.keyword_label.as_deref() == Some(n.label.as_str())), "every node keeps its keyword label");
    let rows: Vec<QaRow> = read_rows(&case.out.join("train/ssft_qa.parquet")).expect("ssft_qa");
    assert!(!rows.is_empty() && rows.iter().all(|r| r.origin == "questions"), "only the questions file's samples");
    assert_eq!(counts(&m["stages"]["emit"], "llm_qa_samples"), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("emit       ran"));
    // Invalid replies are the model's answer, cached: a rerun has nothing to retry.
    let o = succeeded(case.run());
    assert!(String::from_utf8_lossy(&o.stdout).contains("emit       skipped"), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn an_endpoint_that_never_answers_is_a_clear_error_naming_it() {
    let case = Case::new("");
    let o = case.run();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("the LLM endpoint `http://127.0.0.1:{}/v1`", case.port)) && err.contains("does not answer"), "{err}");
    // The stages before the taxonomy's are kept, whole; nothing of the taxonomy is written.
    assert!(case.out.join("embeddings.parquet").exists() && !case.out.join("taxonomy.parquet").exists());
    assert_eq!(replies_cached(&case.cache), 0);
}

#[test]
#[ignore = "needs llama-cpp-python's server: make test-llm"]
fn calls_slower_than_the_timeout_are_counted_and_retried_on_the_next_run() {
    // The server lists its models at once but takes far longer than 50 ms to write a reply.
    let case = Case::new("timeout_s = 0.05\nmax_retries = 0\nqa_share = 0.2\nqa_per_passage = 1\n");
    let _server = case.serve("server.log");
    succeeded(case.run());
    let titles = &manifest(&case.out)["stages"]["taxonomy"]["llm_titles"];
    assert_eq!(titles["failures"]["timeout"], titles["requests"], "{titles}");
    assert_eq!(counts(titles, "transient_failures"), counts(titles, "requests"));
    let o = succeeded(case.run());
    assert!(String::from_utf8_lossy(&o.stdout).contains("taxonomy   ran"), "timeouts are retried: the stage runs again");
}

#[test]
#[ignore = "needs llama-cpp-python's server: make test-llm"]
fn without_a_questions_file_ssft_qa_holds_the_llms_questions_alone() {
    let case = Case::new("titles = false\nqa_share = 0.3\nqa_per_passage = 1\n");
    let _server = case.serve("server.log");
    let text = std::fs::read_to_string(&case.recipe).expect("recipe");
    let text: String = text.lines().filter(|l| !l.starts_with("questions = ")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&case.recipe, text).expect("recipe");
    succeeded(case.run());
    let m = manifest(&case.out);
    assert!(m["stages"]["taxonomy"].get("llm_titles").is_none(), "titles are off");
    let nodes: Vec<TaxonomyNode> = read_rows(&case.out.join("taxonomy.parquet")).expect("taxonomy");
    assert!(nodes.iter().all(|n| n.keyword_label.is_none()), "no titles, no keyword_label column");
    let rows: Vec<QaRow> = read_rows(&case.out.join("train/ssft_qa.parquet")).expect("ssft_qa");
    assert!(!rows.is_empty() && rows.iter().all(|r| r.origin == "llm"), "the LLM's samples alone");
    assert_eq!(counts(&m["stages"]["emit"], "ssft_qa_samples"), rows.len() as u64);
    let info = std::fs::read_to_string(case.out.join("train/dataset_info.json")).expect("dataset_info");
    assert!(info.contains("\"strata_medicine_ssft_qa\""), "ssft_qa is registered: {info}");
}
