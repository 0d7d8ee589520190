//! Sections into chunks, on the model tokenizer's own output: each section is tokenized once
//! and its split points are chosen on the token sequence, at the strongest Markdown boundary
//! that fits (a blank line, then a line break, a sentence end, a space, and only as a last
//! resort between two tokens of one word), as late as the maximum allows; chunks under the
//! minimum are then merged with a neighbour of the same section. A chunk's count is its
//! number of tokens in the section, which is exact when both its ends are cut at whitespace
//! and the tokenizer splits there ([`TokenCounter::splits_at_whitespace`], true of BERT's);
//! any other chunk is counted again alone. Runs of more than [`LONG_RUN`] bytes without
//! whitespace (inlined base64, minified data) are set apart first and cut by [`cut_run`],
//! which bounds their chunks in bytes too: WordPiece reads a long word as one unknown token.

use crate::sections::{sections, Section};
use crate::ChunkConfig;
use rayon::prelude::*;
use std::ops::Range;
use strata_core::tokens::{TokenCounter, TokenizerError};

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
    let exact_in_context = counter.splits_at_whitespace();
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
            let part = Tokenized::new(body, range.start, counter, exact_in_context)?;
            let mut pieces = part.split(counter, capacity, config.min_tokens)?;
            merge_small(&mut pieces, &part, counter, config)?;
            pieces.into_iter().map(|(_, span)| span).filter(|s| s.start < s.end).collect()
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

/// How strong a cut between two tokens is, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Boundary {
    /// No whitespace between them: two tokens of one word, or a word and its punctuation.
    Token,
    Word,
    Sentence,
    Line,
    /// A blank line: paragraphs, list blocks, code blocks, tables.
    Paragraph,
}

/// The cut between a token ending at byte `prev_end` of `body` and the next, starting at
/// `next_start`; none where their spans overlap (one character in several byte-level tokens).
fn boundary(body: &str, prev_end: usize, next_start: usize) -> Option<Boundary> {
    if next_start < prev_end {
        return None;
    }
    let gap = &body[prev_end..next_start];
    if !gap.contains(char::is_whitespace) {
        return Some(Boundary::Token);
    }
    Some(match gap.matches('\n').count() {
        0 if ends_sentence(&body[..prev_end]) => Boundary::Sentence,
        0 => Boundary::Word,
        1 => Boundary::Line,
        _ => Boundary::Paragraph,
    })
}

/// Whether `text` ends a sentence: `.`, `!` or `?`, perhaps inside closing quotes or brackets.
fn ends_sentence(text: &str) -> bool {
    text.trim_end_matches(['"', '\'', ')', ']', '\u{201d}', '\u{2019}', '*', '_']).ends_with(['.', '!', '?', '\u{3002}'])
}

/// A part of a document, tokenized once, with the boundary before each of its tokens.
struct Tokenized<'a> {
    body: &'a str,
    /// Where `body` starts in the document.
    offset: usize,
    tokens: Vec<(usize, usize)>,
    /// `cuts[i]`: the boundary before token `i` (none before the first).
    cuts: Vec<Option<Boundary>>,
    exact_in_context: bool,
}

impl<'a> Tokenized<'a> {
    fn new(body: &'a str, offset: usize, counter: &TokenCounter, exact_in_context: bool) -> Result<Self, TokenizerError> {
        let tokens = counter.token_spans(body)?;
        let cuts = std::iter::once(None).chain(tokens.windows(2).map(|w| boundary(body, w[0].1, w[1].0))).collect();
        Ok(Self { body, offset, tokens, cuts, exact_in_context })
    }

    /// Cuts the part into pieces of at most `capacity` tokens: from each piece's first token,
    /// the cut is the strongest boundary that leaves the piece `min_tokens` long and keeps it
    /// within `capacity`, the latest of its kind (any boundary within `capacity` if none).
    fn split(&self, counter: &TokenCounter, capacity: usize, min_tokens: usize) -> Result<Vec<(Range<usize>, Span)>, TokenizerError> {
        let n = self.tokens.len();
        let best_cut = |from: Range<usize>| from.filter_map(|i| self.cuts[i].map(|b| (b, i))).max().map(|(_, i)| i);
        let mut pieces = Vec::new();
        let mut first = 0;
        while first < n {
            let mut last = n;
            if n - first > capacity {
                let reach = first + capacity;
                last =
                    best_cut(first + min_tokens.clamp(1, capacity)..reach + 1).or_else(|| best_cut(first + 1..reach + 1)).unwrap_or(reach);
            }
            // Counted alone, a piece cut inside a word may come out longer: shorten it.
            loop {
                let span = self.span(first..last, counter)?;
                if span.n_tokens <= capacity || last == first + 1 {
                    pieces.push((first..last, span));
                    break;
                }
                last -= (span.n_tokens - capacity).min(last - first - 1);
            }
            first = last;
        }
        Ok(pieces)
    }

    /// Tokens `range` as a span of the document, whitespace trimmed. Where a cut falls inside
    /// a word, the span runs to the next token's start, so characters the tokenizer dropped
    /// stay in the text. Its count is the tokens in context when both ends are cut at
    /// whitespace and the tokenizer allows it, else the text's count alone.
    fn span(&self, range: Range<usize>, counter: &TokenCounter) -> Result<Span, TokenizerError> {
        let n = self.tokens.len();
        let edge = |i: usize| {
            if i == 0 {
                0
            } else if i == n {
                self.body.len()
            } else {
                self.tokens[i].0.max(self.tokens[i - 1].1)
            }
        };
        let clean = |i: usize| i == 0 || i == n || self.cuts[i].is_some_and(|b| b > Boundary::Token);
        let text = &self.body[edge(range.start)..edge(range.end)];
        let start = edge(range.start) + (text.len() - text.trim_start().len());
        let trimmed = text.trim();
        let n_tokens =
            if self.exact_in_context && clean(range.start) && clean(range.end) { range.len() } else { counter.count(trimmed)? };
        Ok(Span { start: self.offset + start, end: self.offset + start + trimmed.len(), n_tokens })
    }
}

/// Whitespace-free runs longer than this many bytes are cut by [`cut_run`].
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

/// A chunk's bytes in the document and its token count.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    n_tokens: usize,
}

/// Merges every piece under `min_tokens` into the smaller of its neighbours when the merged
/// text still fits the capacity; pieces that cannot merge stay as they are.
fn merge_small(
    pieces: &mut Vec<(Range<usize>, Span)>,
    part: &Tokenized,
    counter: &TokenCounter,
    config: &ChunkConfig,
) -> Result<(), TokenizerError> {
    let mut i = 0;
    while i < pieces.len() {
        if pieces[i].1.n_tokens >= config.min_tokens {
            i += 1;
            continue;
        }
        let mut neighbours = Vec::new();
        if i > 0 {
            neighbours.push(i - 1);
        }
        if i + 1 < pieces.len() {
            neighbours.push(i + 1);
        }
        neighbours.sort_by_key(|&j| pieces[j].1.n_tokens);
        let mut merged = false;
        for j in neighbours {
            let (a, b) = (i.min(j), i.max(j));
            let tokens = pieces[a].0.start..pieces[b].0.end;
            let span = part.span(tokens.clone(), counter)?;
            if span.n_tokens <= config.text_capacity() {
                pieces[a] = (tokens, span);
                pieces.remove(b);
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
    use std::path::PathBuf;

    /// A word-level tokenizer: one token per whitespace-separated word.
    fn words() -> TokenCounter {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tokenizer/words.json");
        TokenCounter::from_file(&path).expect("test tokenizer")
    }

    fn chunk_texts(doc: &str, max_tokens: usize, min_tokens: usize) -> Vec<String> {
        let config = ChunkConfig { max_tokens, min_tokens };
        chunk_document(doc, &words(), &config).expect("chunks").into_iter().map(|c| c.text).collect()
    }

    #[test]
    fn the_strongest_boundary_that_fits_wins_and_the_latest_of_its_kind() {
        // Capacity 6 words: the blank line after word 3 beats the sentence end after word 5.
        assert_eq!(chunk_texts("a b c\n\nd e. f g h i", 8, 0), vec!["a b c", "d e. f g h i"]);
        // No blank line in reach: the sentence end, then the line break, then a space.
        assert_eq!(chunk_texts("a b. c d e f g h", 6, 0), vec!["a b.", "c d e f", "g h"]);
        assert_eq!(chunk_texts("a b\nc d. e f g h", 6, 0), vec!["a b", "c d.", "e f g h"]);
        assert_eq!(chunk_texts("a b c d e f g h", 6, 0), vec!["a b c d", "e f g h"]);
        assert_eq!(chunk_texts("a b c d e (f) g h", 8, 0), vec!["a b c d e (f)", "g h"]);
    }

    #[test]
    fn a_boundary_that_leaves_the_piece_under_the_minimum_is_passed_over() {
        // The blank line after "a" would leave a one-word piece: the sentence end wins.
        assert_eq!(chunk_texts("a\n\nb c d. e f g h", 8, 3), vec!["a\n\nb c d.", "e f g h"]);
        assert_eq!(chunk_texts("a\n\nb c d. e f g h", 8, 0), vec!["a", "b c d.", "e f g h"]);
    }

    #[test]
    fn small_pieces_merge_with_the_smaller_neighbour_when_it_fits() {
        let counter = words();
        let config = ChunkConfig { max_tokens: 8, min_tokens: 2 };
        let body = "a b c d e f g";
        let part = Tokenized::new(body, 0, &counter, true).expect("tokens");
        let mut pieces: Vec<_> = [0..3, 3..4, 4..7].into_iter().map(|r| (r.clone(), part.span(r, &counter).expect("span"))).collect();
        merge_small(&mut pieces, &part, &counter, &config).expect("merge");
        // "d" (1 token) joins "a b c" (3, smaller than "e f g"? equal: the earlier wins) as 4 <= 6.
        let got: Vec<_> = pieces.iter().map(|(r, s)| (r.clone(), &body[s.start..s.end], s.n_tokens)).collect();
        assert_eq!(got, vec![(0..4, "a b c d", 4), (4..7, "e f g", 3)]);
    }

    #[test]
    fn a_count_in_context_is_used_only_where_it_is_the_count_alone() {
        let counter = words();
        assert!(counter.splits_at_whitespace());
        let part = Tokenized::new("a b c", 10, &counter, true).expect("tokens");
        let span = part.span(1..3, &counter).expect("span");
        assert_eq!((span.start, span.end, span.n_tokens), (12, 15, 2));
    }

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
