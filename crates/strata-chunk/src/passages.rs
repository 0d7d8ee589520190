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
pub fn group_passages(
    text: &str,
    chunks: &[DocChunk],
    target: &TokenCounter,
    max_tokens: usize,
) -> Result<Vec<DocPassage>, TokenizerError> {
    // Each chunk's tokens, and those of the text between it and the chunk before (headings,
    // blank lines). Their sums estimate a run's tokens; BPE may merge across a boundary, so
    // the final text is counted again, exactly.
    let mut own = Vec::with_capacity(chunks.len());
    let mut gap = Vec::with_capacity(chunks.len());
    for (i, c) in chunks.iter().enumerate() {
        gap.push(if i == 0 { 0 } else { target.count(&text[chunks[i - 1].byte_end..c.byte_start])? });
        own.push(target.count(&c.text)?);
    }
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
            end = structure_cut(chunks, &own, &gap, start..end, max_tokens).unwrap_or(end);
        }
        loop {
            let (byte_start, byte_end) = (chunks[start].byte_start, chunks[end - 1].byte_end);
            // A single chunk's text is the passage's: its count is already exact.
            let n_tokens = if end == start + 1 { own[start] } else { target.count(&text[byte_start..byte_end])? };
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
        let passages = group_passages(&text, &chunks, &c, 70).expect("group");
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
        let passages = group_passages(&text, &chunks, &counter(), 100).expect("group");
        let ranges: Vec<_> = passages.iter().map(|p| p.chunks.clone()).collect();
        assert_eq!(ranges, vec![0..2, 2..4]);
        assert!(text[passages[1].byte_start..passages[1].byte_end].starts_with("w61"));
        // Under half full the section boundary is not worth an early cut.
        let (text, chunks) = document(&[("A", &[10]), ("B", &[30, 70])]);
        let ranges: Vec<_> = group_passages(&text, &chunks, &counter(), 100).expect("group").iter().map(|p| p.chunks.clone()).collect();
        assert_eq!(ranges, vec![0..2, 2..3]);
    }

    #[test]
    fn headings_between_chunks_are_in_the_text_and_counted() {
        let (text, chunks) = document(&[("A", &[10]), ("B", &[10])]);
        let passages = group_passages(&text, &chunks, &counter(), 100).expect("group");
        assert_eq!(passages.len(), 1);
        let body = &text[passages[0].byte_start..passages[0].byte_end];
        assert!(body.contains("## B"), "{body}");
        assert_eq!(passages[0].n_tokens, 22);
    }

    #[test]
    fn a_document_that_fits_is_one_passage_and_none_is_none() {
        let (text, chunks) = document(&[("A", &[10, 10]), ("B", &[10])]);
        let passages = group_passages(&text, &chunks, &counter(), 100).expect("group");
        assert_eq!(
            passages,
            vec![DocPassage { chunks: 0..3, byte_start: chunks[0].byte_start, byte_end: chunks[2].byte_end, n_tokens: 32 }]
        );
        assert!(group_passages("", &[], &counter(), 100).expect("group").is_empty());
    }

    #[test]
    fn a_chunk_over_the_maximum_is_a_passage_alone() {
        let (text, chunks) = document(&[("A", &[10, 90, 10])]);
        let ranges: Vec<_> = group_passages(&text, &chunks, &counter(), 50).expect("group").iter().map(|p| p.chunks.clone()).collect();
        assert_eq!(ranges, vec![0..1, 1..2, 2..3]);
    }
}
