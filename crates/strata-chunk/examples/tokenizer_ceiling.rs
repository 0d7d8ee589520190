//! The chunk stage's ceiling for `make bench`: the tokenizers alone on the corpus the stage
//! reads, with the stage's parallelism (rayon over documents) and nothing else (no Markdown
//! sections, no split points, no files written). Ingest (reading, JSON, NFC) is timed apart.
//!
//!   tokenizer_ceiling CORPUS EMBEDDING_TOKENIZER [TARGET_TOKENIZER]
//!
//! Prints one JSON line: seconds for ingest, the embedding tokenizer, the target tokenizer,
//! and the token counts.

use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;
use strata_core::tokens::TokenCounter;

/// The `strata` binary's allocator (crates/strata-cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [corpus, embedding, rest @ ..] = args.as_slice() else {
        return Err("usage: tokenizer_ceiling CORPUS EMBEDDING_TOKENIZER [TARGET_TOKENIZER]".into());
    };
    let started = Instant::now();
    let scan = strata_chunk::scan_corpus(Path::new(corpus), false)?;
    let mut texts = Vec::new();
    scan.for_each_document(None, |d| -> Result<(), strata_chunk::IngestError> {
        texts.push(d.text);
        Ok(())
    })?;
    let ingest = started.elapsed().as_secs_f64();
    let time = |path: &str| -> Result<(f64, usize), Box<dyn std::error::Error>> {
        let counter = TokenCounter::from_file(Path::new(path))?;
        let started = Instant::now();
        let tokens = texts.par_iter().map(|t| counter.count(t)).sum::<Result<usize, _>>()?;
        Ok((started.elapsed().as_secs_f64(), tokens))
    };
    let (embedding_s, embedding_tokens) = time(embedding)?;
    let (target_s, target_tokens) = match rest.first() {
        Some(target) => time(target)?,
        None => (0.0, 0),
    };
    println!(
        "{}",
        serde_json::json!({
            "documents": texts.len(), "bytes": texts.iter().map(String::len).sum::<usize>(),
            "ingest_s": ingest, "embedding_tokenizer_s": embedding_s, "embedding_tokens": embedding_tokens,
            "target_tokenizer_s": target_s, "target_tokens": target_tokens,
        })
    );
    Ok(())
}
