//! `strata search --mode` and `strata serve` on a small run (the static embedder): a query
//! whose answer chunk is known ranks it first in every mode, from the command line and over
//! HTTP; bad input gets its 4xx; SIGTERM stops the server cleanly. The server listens on a
//! free loopback port and is stopped by its process id however the test ends.

mod common;

use common::{stderr, strata, Fixture};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use strata_core::records::PublishedChunk;

/// The server process, killed when dropped (a failed assertion must not leave it running).
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(run: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["serve", "--run", run, "--addr", "127.0.0.1:0", "--max-concurrency", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strata serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("first line");
        let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("unexpected first line `{line}`")).to_string();
        Self { child, addr }
    }

    /// One HTTP/1.1 request; the status and the body.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("head");
        // A server may refuse a large body before reading it all: a failed write is its answer.
        let _ = stream.write_all(body);
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    fn search(&self, json: serde_json::Value) -> (u16, serde_json::Value) {
        let (status, body) = self.request("POST", "/search", json.to_string().as_bytes());
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_mode_finds_a_known_chunk_and_the_server_holds_its_contract() {
    let f = Fixture::with_recipe("[embed]\nmodel = \"static\"\n");
    f.demo_docs(6);
    let o = f.strata("run", &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = f.out.to_str().expect("utf-8");
    let chunks: Vec<PublishedChunk> = strata_core::parquet_io::read_rows(&f.out.join("chunks.parquet")).expect("chunks");
    // A long chunk's own opening words: its answer is itself.
    let known = chunks.iter().max_by_key(|c| c.n_tokens).expect("a chunk");
    let query: String = known.text.split_whitespace().take(40).collect::<Vec<_>>().join(" ");

    for mode in ["bm25", "dense", "hybrid"] {
        let o = strata(&["search", "--run", run, &query, "-k", "3", "--mode", mode, "--json"]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().expect("a hit")).expect("json");
        assert_eq!(first["chunk_id"], known.chunk_id.as_str(), "{mode}");
    }
    let o = strata(&["search", "--run", run, "anything", "--mode", "nope"]);
    assert!(!o.status.success() && stderr(&o).contains("unknown search mode"), "{}", stderr(&o));

    let server = Server::start(run);
    let (status, body) = server.request("GET", "/health", b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    for mode in ["bm25", "dense", "hybrid"] {
        let (status, answer) = server.search(serde_json::json!({"query": query, "k": 2, "mode": mode}));
        assert_eq!(status, 200, "{mode}: {answer}");
        assert_eq!(answer["hits"][0]["chunk_id"], known.chunk_id.as_str(), "{mode}");
        assert_eq!(answer["hits"].as_array().map(Vec::len), Some(2));
    }
    // Within the known chunk's own subtree it is still first; the default mode is hybrid.
    let (status, answer) = server.search(serde_json::json!({"query": query, "under": known.taxonomy_path.join("/")}));
    assert_eq!((status, answer["mode"].as_str()), (200, Some("hybrid")), "{answer}");
    assert_eq!(answer["hits"][0]["chunk_id"], known.chunk_id.as_str());

    let bad: [(&[u8], u16, &str); 7] = [
        (b"{not json", 400, "malformed"),
        (br#"{"query": "   "}"#, 400, "query"),
        (br#"{"query": "fever", "k": 0}"#, 400, "out of range"),
        (br#"{"query": "fever", "k": 101}"#, 400, "out of range"),
        (br#"{"query": "fever", "mode": "nope"}"#, 400, "unknown search mode"),
        (br#"{"query": "fever", "under": "/No such topic"}"#, 404, "No such topic"),
        (br#"{"query": "fever", "extra": 1}"#, 400, "unknown field"),
    ];
    for (body, want, needle) in bad {
        let (status, answer) = server.request("POST", "/search", body);
        assert_eq!(status, want, "{}: {answer}", String::from_utf8_lossy(body));
        assert!(answer.contains("\"error\"") && answer.contains(needle), "{answer}");
    }
    let huge = format!(r#"{{"query": "{}"}}"#, "fever ".repeat(5_000));
    let (status, answer) = server.request("POST", "/search", huge.as_bytes());
    assert!(status == 413 && answer.contains("\"error\""), "{status}: {answer}");
    assert_eq!(server.request("GET", "/nowhere", b"").0, 404);

    // SIGTERM: the server finishes and exits successfully.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let status = server.child.wait().expect("exits");
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    server.child.stdout.take().expect("stdout").read_to_string(&mut rest).expect("rest");
    assert!(rest.contains("stopped"), "{rest}");
}
