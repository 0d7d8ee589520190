//! Candidate label phrases: runs of 1 to 4 content words that follow each other in a text with
//! only spaces between them, each counted per node with the surface form it most often takes,
//! so that a label reads as the text writes it ("HIV", "Kidney stones").

use std::collections::{BTreeMap, HashMap, HashSet};
use strata_core::labels::is_content_word;

/// Longest phrase, in words.
pub const MAX_WORDS: usize = 4;

/// One occurrence of a phrase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phrase {
    /// Lowercase words joined by single spaces: the phrase's identity.
    pub key: String,
    /// The words as written, joined by single spaces.
    pub surface: String,
}

/// The phrases of `text`, in order of their first word, shorter first.
pub fn phrases(text: &str) -> Vec<Phrase> {
    let mut out = Vec::new();
    for run in runs(text) {
        for start in 0..run.len() {
            for end in start + 1..=(start + MAX_WORDS).min(run.len()) {
                let words = &run[start..end];
                out.push(Phrase {
                    key: words.iter().map(|w| w.to_lowercase()).collect::<Vec<_>>().join(" "),
                    surface: words.join(" "),
                });
            }
        }
    }
    out
}

/// Maximal runs of content words separated by whitespace only, as written.
fn runs(text: &str) -> Vec<Vec<&str>> {
    let mut runs: Vec<Vec<&str>> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut last_end = 0;
    for (start, word) in word_spans(text) {
        let joined = text[last_end..start].chars().all(char::is_whitespace);
        let content = is_content_word(&word.to_lowercase());
        if (!joined || !content) && !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
        if content {
            current.push(word);
        }
        last_end = start + word.len();
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// Words with their byte offsets: letters, digits, and hyphens or apostrophes inside a word.
fn word_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let is_word_char = |c: char| c.is_alphanumeric() || c == '-' || c == '\'';
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        match (start, is_word_char(c)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let word = &text[s..i];
                let trimmed = word.trim_start_matches(['-', '\'']);
                let offset = s + word.len() - trimmed.len();
                let trimmed = trimmed.trim_end_matches(['-', '\'']);
                if !trimmed.is_empty() {
                    spans.push((offset, trimmed));
                }
                start = None;
            }
            _ => {}
        }
    }
    spans.into_iter()
}

/// How often a phrase occurs in a node: the chunks that hold it and its surface forms.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub chunks: u32,
    surfaces: BTreeMap<String, u32>,
}

impl Tally {
    /// The form written most often (the first in byte order on a tie).
    pub fn surface(&self) -> &str {
        self.surfaces.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map_or("", |(s, _)| s.as_str())
    }
}

/// The phrases of each node that contain one of the node's seed terms (its keywords), so that
/// memory follows what can become a label, not every n-gram of the corpus.
pub struct NodePhrases {
    /// Per node: the words of each seed term.
    seeds: Vec<Vec<Vec<String>>>,
    pub tallies: Vec<HashMap<String, Tally>>,
}

impl NodePhrases {
    /// `seeds[node]` are the node's keyword terms (a term is one word or two).
    pub fn new(seeds: &[Vec<String>]) -> Self {
        let seeds: Vec<Vec<Vec<String>>> =
            seeds.iter().map(|terms| terms.iter().map(|t| t.split(' ').map(str::to_string).collect()).collect()).collect();
        Self { tallies: vec![HashMap::new(); seeds.len()], seeds }
    }

    /// Counts the phrases of one text into each node of `nodes` whose seed they contain.
    pub fn add(&mut self, text_phrases: &[Phrase], nodes: &[usize]) {
        for &node in nodes {
            let mut seen: HashSet<&str> = HashSet::new();
            for p in text_phrases {
                let words: Vec<&str> = p.key.split(' ').collect();
                if !self.seeds[node].iter().any(|seed| seed.iter().all(|w| words.contains(&w.as_str()))) {
                    continue;
                }
                let tally = self.tallies[node].entry(p.key.clone()).or_default();
                *tally.surfaces.entry(p.surface.clone()).or_default() += 1;
                if seen.insert(&p.key) {
                    tally.chunks += 1;
                }
            }
        }
    }

    /// The seed terms of `node` that `key` contains (all their words), as indices.
    pub fn seeds_in(&self, node: usize, key: &str) -> Vec<usize> {
        let words: Vec<&str> = key.split(' ').collect();
        (0..self.seeds[node].len()).filter(|&s| self.seeds[node][s].iter().all(|w| words.contains(&w.as_str()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_are_runs_of_content_words_as_written() {
        let keys: Vec<String> = phrases("Kidney stones, in HIV patients.").into_iter().map(|p| p.surface).collect();
        assert_eq!(keys, ["Kidney", "Kidney stones", "stones", "HIV", "HIV patients", "patients"]);
        // Punctuation and stopwords break a run; at most four words.
        let long = phrases("acute renal tubular necrosis syndrome");
        assert!(long.iter().all(|p| p.key.split(' ').count() <= MAX_WORDS));
        assert!(long.iter().any(|p| p.key == "acute renal tubular necrosis"));
        assert!(!long.iter().any(|p| p.key == "acute renal tubular necrosis syndrome"));
    }

    #[test]
    fn nodes_count_only_phrases_holding_a_seed() {
        let mut nodes = NodePhrases::new(&[vec!["kidney stones".into()], vec!["hiv".into()]]);
        let text = phrases("Kidney stones form. kidney stones pass. HIV and kidney stones.");
        nodes.add(&text, &[0, 1]);
        let stones = &nodes.tallies[0]["kidney stones"];
        assert_eq!((stones.chunks, stones.surface()), (1, "kidney stones"));
        assert!(!nodes.tallies[0].contains_key("kidney"), "a word of a seed is not the seed");
        assert_eq!(nodes.tallies[1].keys().collect::<Vec<_>>(), ["hiv"]);
        assert_eq!(nodes.seeds_in(0, "kidney stones pass"), [0]);
    }
}
