//! The chunker at the limits stated in docs/LIMITS.md, with the real model tokenizer (from
//! `make model`): a long line without whitespace and a large single document still give
//! chunks within the token maximum whose spans cover the document exactly.
//! `STRATA_LARGE_DOC_MB` sets the large document's size (`make soak` uses 100).

use std::path::PathBuf;
use std::time::Instant;
use strata_chunk::{chunk_document, ChunkConfig, DocChunk};
use strata_core::tokens::TokenCounter;

fn counter() -> TokenCounter {
    let cache = std::env::var_os("STRATA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/strata"));
    let path = cache.join("models/all-minilm-l6-v2/tokenizer.json");
    TokenCounter::from_file(&path).unwrap_or_else(|e| panic!("{e}: run `make model` first"))
}

/// Deterministic pseudo-random numbers (no dependency needed for test data).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Chunks `doc`, printing the time taken, and checks every chunk: within the maximum, its text
/// and token count exact, spans in order; what lies between chunks is whitespace or headings.
fn chunk_and_check(what: &str, doc: &str, counter: &TokenCounter) -> Vec<DocChunk> {
    let config = ChunkConfig::default();
    let started = Instant::now();
    let chunks = chunk_document(doc, counter, &config).expect("chunks");
    eprintln!("{what}: {} bytes -> {} chunks in {:.2} s", doc.len(), chunks.len(), started.elapsed().as_secs_f64());
    let mut end = 0;
    for c in &chunks {
        assert!(c.n_tokens <= config.text_capacity(), "{} tokens at byte {}", c.n_tokens, c.byte_start);
        assert_eq!(c.text, doc[c.byte_start..c.byte_end]);
        assert!(c.byte_start >= end, "chunks overlap at byte {}", c.byte_start);
        let gap = &doc[end..c.byte_start];
        assert!(gap.lines().all(|l| l.trim().is_empty() || l.starts_with('#')), "text dropped before byte {}: {gap:?}", c.byte_start);
        end = c.byte_end;
    }
    assert!(doc[end..].trim().is_empty());
    chunks
}

#[test]
fn a_5_mb_line_without_whitespace_respects_the_token_maximum() {
    let counter = counter();
    // An inlined base64 blob (letters, digits, `+`, `/`) between two ordinary paragraphs.
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = Lcg(7);
    let blob: String = (0..5 << 20).map(|_| B64[rng.next(B64.len())] as char).collect();
    let doc = format!("# Attachment\n\nThe scan follows.\n\n{blob}\n\nEnd of the attachment.\n");
    let chunks = chunk_and_check("5 MB base64 line", &doc, &counter);
    for c in chunks.iter().step_by(50) {
        assert_eq!(counter.count(&c.text).expect("count"), c.n_tokens);
    }

    // Letters only: one "word" of 5 MB, which the WordPiece tokenizer reads as a single
    // unknown token; it must still be cut into chunks of bounded length, not kept whole.
    let word = "abcdefghij".repeat(1 << 19);
    let chunks = chunk_and_check("5 MB letter run", &word, &counter);
    assert!(
        chunks.iter().all(|c| c.text.len() <= 4 * ChunkConfig::default().max_tokens),
        "a chunk of {} bytes",
        chunks.iter().map(|c| c.text.len()).max().unwrap_or(0)
    );
}

#[test]
fn a_large_document_is_chunked_completely() {
    let counter = counter();
    let mb: usize = std::env::var("STRATA_LARGE_DOC_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    const WORDS: &[&str] = &[
        "the",
        "patient",
        "presented",
        "with",
        "acute",
        "chest",
        "pain",
        "and",
        "dyspnoea",
        "after",
        "exercise",
        "therapy",
        "renal",
        "function",
        "declined",
        "over",
        "three",
        "days",
        "blood",
        "pressure",
        "was",
        "treated",
        "dose",
        "of",
    ];
    let mut rng = Lcg(11);
    let mut doc = String::with_capacity(mb << 20);
    let mut section = 0;
    while doc.len() < mb << 20 {
        if rng.next(40) == 0 {
            section += 1;
            doc.push_str(&format!("\n## Section {section}\n\n"));
        }
        let sentences = 1 + rng.next(8);
        for _ in 0..sentences {
            let n = 5 + rng.next(25);
            let words: Vec<&str> = (0..n).map(|_| WORDS[rng.next(WORDS.len())]).collect();
            doc.push_str(&words.join(" "));
            doc.push_str(". ");
        }
        doc.push_str("\n\n");
    }
    let chunks = chunk_and_check(&format!("{mb} MB document"), &doc, &counter);
    let tokens: usize = chunks.iter().map(|c| c.n_tokens).sum();
    assert!(tokens > doc.len() / 8, "{tokens} tokens for {} bytes", doc.len());
}
