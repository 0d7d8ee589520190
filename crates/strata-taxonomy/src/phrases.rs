//! Candidate label phrases: runs of 1 to 4 content words that follow each other in a text with
//! only spaces between them, each counted per node with the surface form it most often takes,
//! so that a label reads as the text writes it ("HIV", "Kidney stones").

use std::collections::{HashMap, HashSet};
use strata_core::labels::{is_content_word, word_spans};
use strata_core::records::PhraseRecord;

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

impl Phrase {
    fn of(words: &[Word]) -> Self {
        let key = words.iter().map(|w| w.lower.as_str()).collect::<Vec<_>>().join(" ");
        Phrase { key, surface: words.iter().map(|w| w.surface).collect::<Vec<_>>().join(" ") }
    }
}

/// Each phrase of `text` as its words, in order of their first word, shorter first; none is
/// built into a string here.
fn each_phrase(text: &str, mut f: impl FnMut(&[Word])) {
    for run in runs(text) {
        for start in (0..run.len()).filter(|&i| run[i].starts) {
            for end in (start..(start + MAX_WORDS).min(run.len())).filter(|&j| run[j].ends) {
                f(&run[start..=end]);
            }
        }
    }
}

/// A content word of a run: as written, lowercase, and whether a phrase may start or end on it
/// (decided once per word, not once per phrase).
struct Word<'a> {
    surface: &'a str,
    lower: String,
    starts: bool,
    ends: bool,
}

/// Whether `word` (lowercase) may start a noun-like phrase: not a common verb form nor an
/// adverb ("Prevent diabetes problems", "Rarely ..." name no topic).
fn starts_phrase(word: &str) -> bool {
    !VERB_SET.contains(word) && !is_adverb(word)
}

/// Whether `word` (lowercase) may end a noun-like phrase: neither a verb, an adverb, nor a
/// participle in -ed ("Syndrome occurs", "Hepatitis sometimes", "Skin condition characterized").
fn ends_phrase(word: &str) -> bool {
    starts_phrase(word) && !(word.ends_with("ed") && word.len() > 4) && !DANGLING.contains(&word)
}

fn is_adverb(word: &str) -> bool {
    (word.ends_with("ly") && !NOUNS_IN_LY.contains(&word)) || DANGLING.contains(&word)
}

/// [`VERBS`] as a set: looked up once per word of the corpus.
static VERB_SET: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| VERBS.iter().copied().collect());

/// Nouns that end like adverbs.
const NOUNS_IN_LY: &[&str] =
    &["family", "anomaly", "assembly", "supply", "belly", "jelly", "italy", "lily", "reply", "ally", "rally", "fly"];

/// Words that leave a phrase hanging.
const DANGLING: &[&str] = &["sometimes", "approximate", "depending", "according", "regarding", "pay", "get", "make", "need", "want"];

#[rustfmt::skip]
const VERBS: &[&str] = &[
    "affect", "affects", "appear", "appears", "ask", "avoid", "call", "cause", "caused", "causes",
    "check", "contact", "describe", "described", "develop", "developed", "develops", "diagnose",
    "diagnosed", "experience", "find", "found", "happen", "happens", "help", "helps", "increase",
    "increases", "keep", "lead", "leads", "learn", "live", "lower", "occur", "occurs", "prevent",
    "prevents", "provide", "provides", "reduce", "reduces", "report", "reported", "show", "shown",
    "shows", "take", "takes", "talk", "tell", "treat", "treated", "treats", "try", "work", "works",
];

/// Maximal runs of content words separated by whitespace only.
fn runs(text: &str) -> Vec<Vec<Word<'_>>> {
    let mut runs: Vec<Vec<Word>> = Vec::new();
    let mut current: Vec<Word> = Vec::new();
    let mut last_end = 0;
    for (start, surface) in word_spans(text) {
        let joined = text[last_end..start].chars().all(char::is_whitespace);
        let lower = surface.to_lowercase();
        let content = is_content_word(&lower);
        if (!joined || !content) && !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
        if content {
            current.push(Word { surface, starts: starts_phrase(&lower), ends: ends_phrase(&lower), lower });
        }
        last_end = start + surface.len();
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// How often a phrase occurs in a node: the chunks that hold it and its surface forms.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub chunks: u32,
    /// Surface forms and their counts: one or two in practice, so a list, not a map (a
    /// tree map's first node alone is hundreds of bytes, times every phrase of every node).
    surfaces: Vec<(String, u32)>,
}

impl Tally {
    fn add(&mut self, surface: String, occurrences: u32) {
        match self.surfaces.iter_mut().find(|(s, _)| *s == surface) {
            Some((_, n)) => *n += occurrences,
            None => self.surfaces.push((surface, occurrences)),
        }
    }

    /// A shard's count of the phrase added in: its chunks and its forms' occurrences.
    pub fn add_record(&mut self, chunks: u32, surfaces: Vec<String>, counts: Vec<u32>) {
        self.chunks += chunks;
        surfaces.into_iter().zip(counts).for_each(|(surface, n)| self.add(surface, n));
    }

    /// The form written most often (the first in byte order on a tie).
    pub fn surface(&self) -> &str {
        self.surfaces.iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map_or("", |(s, _)| s.as_str())
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

    /// The phrases of one chunk's `texts` (its text and headings, in order) that hold a seed
    /// of each node of `nodes`, by node: only these are built (a text has hundreds of phrases),
    /// and chunks can be matched in parallel.
    pub fn matching(&self, texts: &[&str], nodes: &[usize]) -> Vec<(usize, Phrase)> {
        let mut out = Vec::new();
        for text in texts {
            each_phrase(text, |words| {
                let mut phrase = None;
                for &node in nodes {
                    if self.seeds[node].iter().any(|seed| seed.iter().all(|s| words.iter().any(|w| w.lower == *s))) {
                        out.push((node, phrase.get_or_insert_with(|| Phrase::of(words)).clone()));
                    }
                }
            });
        }
        out
    }

    /// Counts one text's matches (from [`NodePhrases::matching`]): every occurrence into the
    /// surface forms, the text once into each phrase's chunk count.
    pub fn record(&mut self, matches: Vec<(usize, Phrase)>) {
        let mut seen: HashSet<(usize, String)> = HashSet::new();
        for (node, p) in matches {
            let tally = self.tallies[node].entry(p.key.clone()).or_default();
            tally.add(p.surface, 1);
            if seen.insert((node, p.key)) {
                tally.chunks += 1;
            }
        }
    }

    /// The tallies as rows, by node, then phrase, each phrase's forms in byte order: what a
    /// shard writes (`strata keywords --shard I/N`).
    pub fn records(&self) -> Vec<PhraseRecord> {
        let mut rows = Vec::new();
        for (node, tallies) in self.tallies.iter().enumerate() {
            let mut phrases: Vec<(&String, &Tally)> = tallies.iter().collect();
            phrases.sort_unstable_by_key(|(key, _)| *key);
            for (key, tally) in phrases {
                let mut surfaces = tally.surfaces.clone();
                surfaces.sort_unstable();
                let (surfaces, surface_counts) = surfaces.into_iter().unzip();
                rows.push(PhraseRecord { node: node as u32, phrase: key.clone(), chunks: tally.chunks, surfaces, surface_counts });
            }
        }
        rows
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

    fn phrases(text: &str) -> Vec<Phrase> {
        let mut out = Vec::new();
        each_phrase(text, |words| out.push(Phrase::of(words)));
        out
    }

    #[test]
    fn phrases_are_runs_of_content_words_as_written() {
        let keys: Vec<String> = phrases("Kidney stones, in HIV patients.").into_iter().map(|p| p.surface).collect();
        assert_eq!(keys, ["Kidney", "Kidney stones", "stones", "HIV", "HIV patients", "patients"]);
        // Punctuation and stopwords break a run; at most four words.
        let long = phrases("acute renal tubular necrosis syndrome");
        assert!(long.iter().all(|p| p.key.split(' ').count() <= MAX_WORDS));
        assert!(long.iter().any(|p| p.key == "acute renal tubular necrosis"));
        assert!(!long.iter().any(|p| p.key == "acute renal tubular necrosis syndrome"));
        // A verb, an adverb or a participle neither starts nor ends a phrase; inside one they may sit.
        let verbs: Vec<String> = phrases("syndrome occurs rarely").into_iter().map(|p| p.key).collect();
        assert_eq!(verbs, ["syndrome"]);
        let inside: Vec<String> = phrases("inherited disorders characterized").into_iter().map(|p| p.key).collect();
        assert_eq!(inside, ["inherited disorders", "disorders"]);
        assert!(phrases("family history").iter().any(|p| p.key == "family history"));
    }

    #[test]
    fn nodes_count_only_phrases_holding_a_seed() {
        let mut nodes = NodePhrases::new(&[vec!["kidney stones".into()], vec!["hiv".into()]]);
        let matches = nodes.matching(&["Kidney stones form. kidney stones pass.", "HIV and kidney stones."], &[0, 1]);
        nodes.record(matches);
        let stones = &nodes.tallies[0]["kidney stones"];
        assert_eq!((stones.chunks, stones.surface()), (1, "kidney stones"));
        assert!(!nodes.tallies[0].contains_key("kidney"), "a word of a seed is not the seed");
        assert_eq!(nodes.tallies[1].keys().collect::<Vec<_>>(), ["hiv"]);
        assert_eq!(nodes.seeds_in(0, "kidney stones pass"), [0]);
    }

    #[test]
    fn counts_split_in_two_and_added_up_are_the_counts_of_the_whole() {
        let seeds = [vec!["stones".to_string()], vec!["hiv".to_string()]];
        let texts: [(&[&str], &[usize]); 3] =
            [(&["Kidney stones hurt."], &[0]), (&["kidney stones, HIV"], &[0, 1]), (&["Kidney stones and HIV. HIV"], &[0, 1])];
        let count = |texts: &[(&[&str], &[usize])]| {
            let mut nodes = NodePhrases::new(&seeds);
            texts.iter().for_each(|(t, n)| nodes.record(nodes.matching(t, n)));
            nodes
        };
        let whole = count(&texts);
        let mut merged = NodePhrases::new(&seeds);
        for part in [count(&texts[..1]), count(&texts[1..])] {
            for r in part.records() {
                merged.tallies[r.node as usize].entry(r.phrase).or_default().add_record(r.chunks, r.surfaces, r.surface_counts);
            }
        }
        assert_eq!(merged.records(), whole.records());
        let stones = &merged.tallies[0]["kidney stones"];
        // "Kidney stones" twice, "kidney stones" once; three chunks; HIV three times in two chunks.
        assert_eq!((stones.chunks, stones.surface()), (3, "Kidney stones"));
        assert_eq!(merged.tallies[1]["hiv"].chunks, 2);
    }
}
