//! Sections into chunks: `text-splitter`'s Markdown splitter sized by the model tokenizer,
//! then a pass that merges chunks under the minimum with a neighbour of the same section.

use crate::sections::sections;
use crate::ChunkConfig;
use strata_core::tokens::{TokenCounter, TokenizerError};
use text_splitter::MarkdownSplitter;

/// One chunk of a document: `text` is `document[byte_start..byte_end]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DocChunk {
    pub heading_path: Vec<String>,
    pub text: String,
    pub n_tokens: usize,
    pub byte_start: usize,
    pub byte_end: usize,
}

/// Chunks one (NFC-normalised) document.
pub fn chunk_document(text: &str, counter: &TokenCounter, config: &ChunkConfig) -> Result<Vec<DocChunk>, TokenizerError> {
    let capacity = config.text_capacity();
    let splitter = MarkdownSplitter::new(text_splitter::ChunkConfig::new(capacity).with_sizer(counter.tokenizer()));
    let mut out = Vec::new();
    for section in sections(text) {
        let body = &text[section.start..section.end];
        let mut spans = Vec::new();
        for (offset, piece) in splitter.chunk_indices(body) {
            let start = section.start + offset;
            spans.push(Span { start, end: start + piece.len(), n_tokens: counter.count(piece)? });
        }
        merge_small(&mut spans, text, counter, config)?;
        out.extend(spans.into_iter().map(|s| DocChunk {
            heading_path: section.heading_path.clone(),
            text: text[s.start..s.end].to_string(),
            n_tokens: s.n_tokens,
            byte_start: s.start,
            byte_end: s.end,
        }));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    n_tokens: usize,
}

/// Merges every span under `min_tokens` into the smaller of its neighbours when the merged
/// text still fits the capacity; spans that cannot merge stay as they are.
fn merge_small(spans: &mut Vec<Span>, text: &str, counter: &TokenCounter, config: &ChunkConfig) -> Result<(), TokenizerError> {
    let mut i = 0;
    while i < spans.len() {
        if spans[i].n_tokens >= config.min_tokens {
            i += 1;
            continue;
        }
        let mut neighbours = Vec::new();
        if i > 0 {
            neighbours.push(i - 1);
        }
        if i + 1 < spans.len() {
            neighbours.push(i + 1);
        }
        neighbours.sort_by_key(|&j| spans[j].n_tokens);
        let mut merged = false;
        for j in neighbours {
            let (a, b) = (i.min(j), i.max(j));
            let (start, end) = (spans[a].start, spans[b].end);
            let n_tokens = counter.count(&text[start..end])?;
            if n_tokens <= config.text_capacity() {
                spans[a] = Span { start, end, n_tokens };
                spans.remove(b);
                i = a;
                merged = true;
                break;
            }
        }
        if !merged {
            i += 1;
        }
    }
    Ok(())
}
