//! Sections into chunks: `text-splitter`'s Markdown splitter sized by the model tokenizer,
//! then a pass that merges chunks under the minimum with a neighbour of the same section.
//! Runs of more than [`LONG_RUN`] bytes without whitespace (inlined base64, minified data)
//! are set apart first and cut by [`cut_run`]: text-splitter has no boundary to find in them.

use crate::sections::{sections, Section};
use crate::ChunkConfig;
use rayon::prelude::*;
use std::ops::Range;
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

/// Chunks one (NFC-normalised) document. Its parts (sections, and the blocks of long runs
/// within them) are chunked independently, in parallel, so one large document uses every core.
pub fn chunk_document(text: &str, counter: &TokenCounter, config: &ChunkConfig) -> Result<Vec<DocChunk>, TokenizerError> {
    let capacity = config.text_capacity();
    let splitter = MarkdownSplitter::new(text_splitter::ChunkConfig::new(capacity).with_sizer(counter.tokenizer()));
    let sections = sections(text);
    let parts: Vec<(&Section, Range<usize>, bool)> = sections
        .iter()
        .flat_map(|s| {
            long_runs_apart(&text[s.start..s.end]).into_iter().map(move |(r, long)| (s, s.start + r.start..s.start + r.end, long))
        })
        .collect();
    let chunked = parts.par_iter().map(|(section, range, long_run)| {
        let body = &text[range.clone()];
        let spans = if *long_run {
            cut_run(body, range.start, counter, capacity)?
        } else {
            let mut spans = Vec::new();
            for (offset, piece) in splitter.chunk_indices(body) {
                let start = range.start + offset;
                spans.push(Span { start, end: start + piece.len(), n_tokens: counter.count(piece)? });
            }
            merge_small(&mut spans, text, counter, config)?;
            spans
        };
        let chunk = |s: Span| DocChunk {
            heading_path: section.heading_path.clone(),
            text: text[s.start..s.end].to_string(),
            n_tokens: s.n_tokens,
            byte_start: s.start,
            byte_end: s.end,
        };
        Ok(spans.into_iter().map(chunk).collect::<Vec<_>>())
    });
    Ok(chunked.collect::<Result<Vec<_>, TokenizerError>>()?.into_iter().flatten().collect())
}

/// Whitespace-free runs longer than this many bytes bypass text-splitter.
const LONG_RUN: usize = 16 * 1024;
/// Long runs are cut in blocks of at most this many bytes, in parallel.
const RUN_BLOCK: usize = 64 * 1024;

/// `text` cut into consecutive ranges: runs of more than [`LONG_RUN`] bytes without whitespace,
/// in blocks of at most [`RUN_BLOCK`] bytes (`true`), and the text between them (`false`).
fn long_runs_apart(text: &str) -> Vec<(Range<usize>, bool)> {
    let mut out = Vec::new();
    let (mut rest, mut run) = (0, None);
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        if !c.is_whitespace() {
            run.get_or_insert(i);
        } else if let Some(mut start) = run.take().filter(|&s| i - s > LONG_RUN) {
            if rest < start {
                out.push((rest..start, false));
            }
            while start < i {
                let mut end = (start + RUN_BLOCK).min(i);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                out.push((start..end, true));
                start = end;
            }
            rest = i;
        }
    }
    if rest < text.len() {
        out.push((rest..text.len(), false));
    }
    out
}

/// Cuts a whitespace-free run (at `offset` in the document) into pieces within the capacity:
/// a window of four bytes per token of capacity is tokenized once and cut after its
/// `capacity`-th token; the piece is then counted alone (a word cut in two may tokenize
/// differently) and shortened while it is over.
fn cut_run(run: &str, offset: usize, counter: &TokenCounter, capacity: usize) -> Result<Vec<Span>, TokenizerError> {
    let mut spans = Vec::new();
    let mut start = 0;
    while start < run.len() {
        let mut window_end = (start + 4 * capacity).min(run.len());
        while !run.is_char_boundary(window_end) {
            window_end -= 1;
        }
        let window = &run[start..window_end];
        let encoding = counter.tokenizer().encode(window, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let ends: Vec<usize> = encoding.get_offsets().iter().map(|&(_, end)| end).collect();
        let mut k = ends.len().min(capacity);
        loop {
            let end = if k == ends.len() { window.len() } else { ends[k - 1] };
            let n_tokens = counter.count(&window[..end])?;
            if n_tokens <= capacity || k <= 1 {
                spans.push(Span { start: offset + start, end: offset + start + end, n_tokens });
                start += end;
                break;
            }
            k -= (n_tokens - capacity).min(k - 1);
        }
    }
    Ok(spans)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_long_whitespace_free_runs_are_set_apart() {
        let blob = "x".repeat(LONG_RUN + 1);
        let huge = "y".repeat(RUN_BLOCK + 10);
        let text = format!("ab {blob}\ncd");
        let end = 3 + blob.len();
        assert_eq!(long_runs_apart(&text), vec![(0..3, false), (3..end, true), (end..text.len(), false)]);
        assert_eq!(long_runs_apart(&blob), vec![(0..blob.len(), true)]);
        assert_eq!(long_runs_apart(&huge), vec![(0..RUN_BLOCK, true), (RUN_BLOCK..huge.len(), true)]);
        let short = format!("{} {}", &blob[1..], &blob[1..]);
        assert_eq!(long_runs_apart(&short), vec![(0..short.len(), false)]);
    }
}
