//! Chunks into passages, the training unit: consecutive chunks of one document, as many as fit
//! in `passage_tokens` tokens of the *target* model, cut where the document's structure
//! changes (a new section) when such a cut leaves the passage at least half full, else between
//! two chunks (a paragraph or sentence boundary: chunks end at one). A passage's text is the
//! document from its first chunk's start to its last chunk's end, so headings between its
//! chunks stay in it; its size is counted on that text, exactly.

use crate::split::DocChunk;
use std::ops::Range;
use strata_core::tokens::{TokenCounter, TokenizerError};

/// One passage of a document: chunks `chunks` of it, text `document[byte_start..byte_end]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DocPassage {
    pub chunks: Range<usize>,
    pub byte_start: usize,
    pub byte_end: usize,
    /// Target tokens of the text.
    pub n_tokens: usize,
}

/// Groups a document's chunks (in order, spans into `text`) into passages of at most
/// `max_tokens` target tokens. A chunk longer than that on its own is a passage by itself.
///
/// `target` is the tokenizer that sized the chunks when `chunk_counts` is given (the recipe
/// names no other): chunk counts are then its counts and need no second pass.
pub fn group_passages(
    text: &str,
    chunks: &[DocChunk],
    target: &TokenCounter,
    max_tokens: usize,
    chunk_counts: ChunkCounts,
) -> Result<Vec<DocPassage>, TokenizerError> {
    let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else { return Ok(Vec::new()) };
    if chunk_counts == ChunkCounts::Target && target.splits_at_whitespace() {
        return group_by_chunk_counts(text, chunks, target, max_tokens);
    }
    // The text from the first chunk to the last is tokenized once. If it fits, it is the one
    // passage and its count is exact; else its tokens estimate each chunk's (`own`) and each
    // gap's between two chunks (headings, blank lines), and every passage is counted again
    // alone, as a cut may change the tokens at its ends (a byte-level BPE joins a space to
    // the next word).
    let span = first.byte_start..last.byte_end;
    let starts: Vec<usize> = target.token_spans(&text[span.clone()])?.iter().map(|&(s, _)| span.start + s).collect();
    if starts.len() <= max_tokens {
        return Ok(vec![DocPassage { chunks: 0..chunks.len(), byte_start: span.start, byte_end: span.end, n_tokens: starts.len() }]);
    }
    let tokens_before = |byte: usize| starts.partition_point(|&s| s < byte);
    let own: Vec<usize> = chunks.iter().map(|c| tokens_before(c.byte_end) - tokens_before(c.byte_start)).collect();
    let gap: Vec<usize> = (0..chunks.len())
        .map(|i| if i == 0 { 0 } else { tokens_before(chunks[i].byte_start) - tokens_before(chunks[i - 1].byte_end) })
        .collect();
    fill(chunks, &own, &gap, max_tokens, |range| target.count(&text[chunks[range.start].byte_start..chunks[range.end - 1].byte_end]))
}

/// Whether the chunks' token counts are the target tokenizer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCounts {
    Target,
    Other,
}

/// Passages from the chunks' own counts, for a target tokenizer that sized the chunks and
/// splits at whitespace: a passage's count is its chunks' plus the text between them
/// (headings), exact wherever whitespace separates them (else the passage is counted alone).
fn group_by_chunk_counts(
    text: &str,
    chunks: &[DocChunk],
    target: &TokenCounter,
    max_tokens: usize,
) -> Result<Vec<DocPassage>, TokenizerError> {
    let own: Vec<usize> = chunks.iter().map(|c| c.n_tokens).collect();
    let mut gap = vec![0; chunks.len()];
    let mut joined = vec![false; chunks.len()];
    for i in 1..chunks.len() {
        let between = &text[chunks[i - 1].byte_end..chunks[i].byte_start];
        gap[i] = target.count(between)?;
        joined[i] = !between.contains(char::is_whitespace);
    }
    fill(chunks, &own, &gap, max_tokens, |range| {
        if joined[range.start + 1..range.end].iter().any(|&j| j) {
            target.count(&text[chunks[range.start].byte_start..chunks[range.end - 1].byte_end])
        } else {
            Ok(range.clone().map(|i| own[i]).sum::<usize>() + range.skip(1).map(|i| gap[i]).sum::<usize>())
        }
    })
}

/// Fills passages greedily from estimated chunk (`own`) and gap counts, preferring a
/// structure cut, each checked against `count` (the passage's exact count) and shortened
/// while over.
fn fill(
    chunks: &[DocChunk],
    own: &[usize],
    gap: &[usize],
    max_tokens: usize,
    count: impl Fn(Range<usize>) -> Result<usize, TokenizerError>,
) -> Result<Vec<DocPassage>, TokenizerError> {
    let mut passages = Vec::new();
    let mut start = 0;
    while start < chunks.len() {
        let mut end = start + 1;
        let mut total = own[start];
        while end < chunks.len() && total + gap[end] + own[end] <= max_tokens {
            total += gap[end] + own[end];
            end += 1;
        }
        if end < chunks.len() {
            end = structure_cut(chunks, own, gap, start..end, max_tokens).unwrap_or(end);
        }
        loop {
            let (byte_start, byte_end) = (chunks[start].byte_start, chunks[end - 1].byte_end);
            let n_tokens = count(start..end)?;
            if n_tokens <= max_tokens || end == start + 1 {
                passages.push(DocPassage { chunks: start..end, byte_start, byte_end, n_tokens });
                break;
            }
            end -= 1;
        }
        start = end;
    }
    Ok(passages)
}

/// The last chunk in `run` after its first where a new section begins and the passage before
/// it already holds half of `max_tokens`: a better cut than between two chunks of one section.
fn structure_cut(chunks: &[DocChunk], own: &[usize], gap: &[usize], run: Range<usize>, max_tokens: usize) -> Option<usize> {
    let mut before = own[run.start];
    let mut best = None;
    for k in run.start + 1..run.end {
        if chunks[k].heading_path != chunks[k - 1].heading_path && before * 2 >= max_tokens {
            best = Some(k);
        }
        before += gap[k] + own[k];
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn counter() -> TokenCounter {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tokenizer/words.json");
        TokenCounter::from_file(&path).expect("test tokenizer")
    }

    /// Passages with the chunk counts taken as the target's and counted anew: the same.
    fn group(text: &str, chunks: &[DocChunk], target: &TokenCounter, max_tokens: usize) -> Result<Vec<DocPassage>, TokenizerError> {
        let anew = group_passages(text, chunks, target, max_tokens, ChunkCounts::Other)?;
        assert_eq!(group_passages(text, chunks, target, max_tokens, ChunkCounts::Target)?, anew);
        Ok(anew)
    }

    /// A document of `sections`, each a heading and paragraphs of `words` words; one chunk
    /// per paragraph.
    fn document(sections: &[(&str, &[usize])]) -> (String, Vec<DocChunk>) {
        let mut text = String::new();
        let mut chunks = Vec::new();
        let mut word = 0;
        for (heading, paragraphs) in sections {
            text += &format!("## {heading}\n\n");
            for &n in paragraphs.iter() {
                let para: Vec<String> = (0..n)
                    .map(|_| {
                        word += 1;
                        format!("w{word}")
                    })
                    .collect();
                let para = para.join(" ");
                let start = text.len();
                text += &para;
                chunks.push(DocChunk {
                    heading_path: vec![heading.to_string()],
                    text: para,
                    n_tokens: n,
                    byte_start: start,
                    byte_end: text.len(),
                });
                text += "\n\n";
            }
        }
        (text, chunks)
    }

    #[test]
    fn passages_fill_up_to_the_maximum_and_never_exceed_it() {
        let (text, chunks) = document(&[("A", &[30, 30, 30, 30, 30])]);
        let c = counter();
        let passages = group(&text, &chunks, &c, 70).expect("group");
        let ranges: Vec<_> = passages.iter().map(|p| p.chunks.clone()).collect();
        assert_eq!(ranges, vec![0..2, 2..4, 4..5]);
        for p in &passages {
            assert!(p.n_tokens <= 70);
        }
        assert_eq!(passages[0].n_tokens, 60);
    }

    #[test]
    fn a_new_section_is_the_preferred_cut_once_half_full() {
        // Greedy would take 40 + 20 + 25 (the heading costs 2): the cut before B keeps A whole.
        let (text, chunks) = document(&[("A", &[40, 20]), ("B", &[25, 30])]);
        let passages = group(&text, &chunks, &counter(), 100).expect("group");
        let ranges: Vec<_> = passages.iter().map(|p| p.chunks.clone()).collect();
        assert_eq!(ranges, vec![0..2, 2..4]);
        assert!(text[passages[1].byte_start..passages[1].byte_end].starts_with("w61"));
        // Under half full the section boundary is not worth an early cut.
        let (text, chunks) = document(&[("A", &[10]), ("B", &[30, 70])]);
        let ranges: Vec<_> = group(&text, &chunks, &counter(), 100).expect("group").iter().map(|p| p.chunks.clone()).collect();
        assert_eq!(ranges, vec![0..2, 2..3]);
    }

    #[test]
    fn headings_between_chunks_are_in_the_text_and_counted() {
        let (text, chunks) = document(&[("A", &[10]), ("B", &[10])]);
        let passages = group(&text, &chunks, &counter(), 100).expect("group");
        assert_eq!(passages.len(), 1);
        let body = &text[passages[0].byte_start..passages[0].byte_end];
        assert!(body.contains("## B"), "{body}");
        assert_eq!(passages[0].n_tokens, 22);
    }

    #[test]
    fn a_document_that_fits_is_one_passage_and_none_is_none() {
        let (text, chunks) = document(&[("A", &[10, 10]), ("B", &[10])]);
        let passages = group(&text, &chunks, &counter(), 100).expect("group");
        assert_eq!(
            passages,
            vec![DocPassage { chunks: 0..3, byte_start: chunks[0].byte_start, byte_end: chunks[2].byte_end, n_tokens: 32 }]
        );
        assert!(group("", &[], &counter(), 100).expect("group").is_empty());
    }

    #[test]
    fn a_chunk_over_the_maximum_is_a_passage_alone() {
        let (text, chunks) = document(&[("A", &[10, 90, 10])]);
        let ranges: Vec<_> = group(&text, &chunks, &counter(), 50).expect("group").iter().map(|p| p.chunks.clone()).collect();
        assert_eq!(ranges, vec![0..1, 1..2, 2..3]);
    }
}
