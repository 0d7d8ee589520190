//! Invariants of chunking on generated Markdown: chunks are exact spans of the document, in
//! order and disjoint, within the token maximum, with exact token counts, and together they
//! hold every non-heading word of the document. Needs the prepared tokenizer (`make model`).

use proptest::prelude::*;
use std::path::PathBuf;
use strata_chunk::{chunk_document, ChunkConfig};
use strata_core::tokens::TokenCounter;

fn counter() -> TokenCounter {
    let cache = std::env::var_os("STRATA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/strata"));
    TokenCounter::from_file(&cache.join("models/all-minilm-l6-v2/tokenizer.json")).expect("tokenizer prepared: run `make model`")
}

/// Markdown made of headings, paragraphs of words, list items and the odd long word.
fn markdown() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        8 => "[a-z]{1,10}",
        1 => "[A-Z][a-z]{2,8}[.,;]",
        1 => "[a-z0-9]{30,80}",
        1 => "(é|ü|ß|日本|—)",
    ];
    let paragraph = prop::collection::vec(word, 1..120).prop_map(|w| w.join(" "));
    let block = prop_oneof![
        1 => (1usize..4, "[A-Z][a-z]{3,10}").prop_map(|(l, t)| format!("{} {}", "#".repeat(l), t)),
        4 => paragraph.clone(),
        1 => prop::collection::vec(paragraph, 1..4).prop_map(|items| items.iter().map(|i| format!("- {i}")).collect::<Vec<_>>().join("\n")),
    ];
    prop::collection::vec(block, 1..12).prop_map(|b| b.join("\n\n"))
}

fn words_outside_headings(doc: &str) -> String {
    doc.lines().filter(|l| !l.trim_start().starts_with('#')).flat_map(|l| l.split_whitespace()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chunks_are_exact_ordered_spans_within_the_limit(doc in markdown(), max in 24usize..300, min in 0usize..20) {
        let counter = counter();
        let config = ChunkConfig { max_tokens: max, min_tokens: min.min(max / 2) };
        let chunks = chunk_document(&doc, &counter, &config).expect("chunks");
        let mut last_end = 0;
        for c in &chunks {
            prop_assert_eq!(&doc[c.byte_start..c.byte_end], c.text.as_str());
            prop_assert!(c.byte_start >= last_end, "spans overlap or go back");
            prop_assert!(!c.text.trim().is_empty());
            prop_assert_eq!(c.n_tokens, counter.count(&c.text).expect("count"));
            prop_assert!(c.n_tokens <= config.text_capacity(), "{} tokens > {}", c.n_tokens, config.text_capacity());
            last_end = c.byte_end;
        }
        let joined: String = chunks.iter().flat_map(|c| c.text.split_whitespace()).collect();
        prop_assert_eq!(joined, words_outside_headings(&doc));
    }
}
