//! What makes a node label good, in one place: the content words of a label, whether it adds
//! nothing to its ancestors' labels, whether two siblings are alike, and the label figures
//! that taxonomy records, eval measures from the files, and the report shows.

use crate::TaxonomyTree;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A word that can carry a topic: 3+ characters, a letter first, not all digits, not a
/// stopword. `word` is lowercase.
pub fn is_content_word(word: &str) -> bool {
    word.chars().count() >= 3
        && word.chars().next().is_some_and(|c| c.is_alphabetic())
        && !word.chars().all(|c| c.is_numeric() || c == '-')
        && !STOPWORD_SET.contains(word)
}

/// [`STOPWORDS`] as a set: looked up once per word of the corpus.
static STOPWORD_SET: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| STOPWORDS.iter().copied().collect());

/// The words of `text`, lowercase ([`word_spans`]).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    word_spans(text).map(|(_, w)| w.to_lowercase())
}

/// The words of `text` as written, with their byte offsets: runs of letters, digits, hyphens
/// and apostrophes, without hyphens or apostrophes at either end.
pub fn word_spans(text: &str) -> impl Iterator<Item = (usize, &str)> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\'')).filter_map(move |raw| {
        let word = raw.trim_matches(['-', '\'']);
        let offset = word.as_ptr() as usize - text.as_ptr() as usize;
        (!word.is_empty()).then_some((offset, word))
    })
}

/// The content words of a label ("Breast cancer" gives {breast, cancer}).
pub fn content_words(label: &str) -> BTreeSet<String> {
    words(label).filter(|w| is_content_word(w)).collect()
}

/// The content words with plural and possessive endings taken off ("Cancers" and "cancer's"
/// give "cancer", "Therapies" gives "therapy"): what two labels are compared on.
pub fn stems(label: &str) -> BTreeSet<String> {
    content_words(label).into_iter().map(|w| stem(&w)).collect()
}

fn stem(word: &str) -> String {
    let word = word.strip_suffix("'s").unwrap_or(word);
    if let Some(base) = word.strip_suffix("ies").filter(|b| b.len() >= 3) {
        return format!("{base}y");
    }
    match word.strip_suffix('s') {
        Some(base) if base.len() >= 3 && !base.ends_with('s') && !base.ends_with('u') && !base.ends_with('i') => base.to_string(),
        _ => word.to_string(),
    }
}

/// Whether a label adds nothing to its ancestors': every one of its content words ([`stems`])
/// stands in one of `ancestors` ("Heparin, anticoagulants" under "Anticoagulants, heparin";
/// "Cancers" under "Breast cancer"; a label without content words adds nothing either).
/// "Breast cancer" under "Cancer" adds "breast".
pub fn repeats_ancestors<'a>(label: &str, ancestors: impl IntoIterator<Item = &'a str>) -> bool {
    let above: BTreeSet<String> = ancestors.into_iter().flat_map(stems).collect();
    stems(label).iter().all(|w| above.contains(w))
}

/// Whether two labels are alike: the same once case and spacing are ignored.
pub fn alike(a: &str, b: &str) -> bool {
    normalise(a) == normalise(b)
}

/// Lowercase with runs of whitespace as one space: the form in which a label is looked for
/// in its node's text.
pub fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Label figures over the nodes below the root (the root is the domain).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelQuality {
    /// Nodes below the root.
    pub labels: u64,
    /// Labels that are one phrase found verbatim (case and spacing aside) in their node's
    /// chunk texts or headings.
    pub verbatim: u64,
    /// Labels whose content words all stand in an ancestor's label ([`repeats_ancestors`]).
    pub redundant: u64,
    /// Pairs of siblings with alike labels.
    pub alike_sibling_pairs: u64,
}

impl LabelQuality {
    /// The figures of `tree`, given for each node whether its label was found verbatim.
    pub fn measure(tree: &TaxonomyTree, verbatim: impl Fn(u32) -> bool) -> Self {
        let mut quality = Self::default();
        for node in tree.nodes().iter().skip(1) {
            quality.labels += 1;
            quality.verbatim += u64::from(verbatim(node.node_id));
            let ancestors = tree.shape().lineage(node.node_id);
            let above = ancestors[..ancestors.len() - 1].iter().map(|&a| tree.node(a).label.as_str());
            quality.redundant += u64::from(repeats_ancestors(&node.label, above));
        }
        for node in tree.nodes() {
            let kids = tree.children(node.node_id);
            for (i, &a) in kids.iter().enumerate() {
                let same = kids[i + 1..].iter().filter(|&&b| alike(&tree.node(a).label, &tree.node(b).label)).count();
                quality.alike_sibling_pairs += same as u64;
            }
        }
        quality
    }

    pub fn verbatim_share(&self) -> f64 {
        self.verbatim as f64 / self.labels.max(1) as f64
    }

    pub fn redundant_share(&self) -> f64 {
        self.redundant as f64 / self.labels.max(1) as f64
    }
}

/// English function words and words too general to name a topic.
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "all", "also", "although", "am",
    "among", "an", "and", "any", "are", "aren't", "around", "as", "at", "be",
    "because", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "cannot", "could", "did", "do", "does", "doing", "down", "due", "during", "each",
    "either", "else", "especially", "etc", "even", "ever", "every", "few", "for", "from",
    "further", "generally", "get", "gets", "given", "had", "has", "have", "having", "he",
    "her", "here", "hers", "herself", "him", "himself", "his", "how", "however", "i",
    "if", "in", "include", "includes", "including", "into", "is", "isn't", "it", "it's",
    "its", "itself", "just", "less", "like", "likely", "made", "make", "makes", "many",
    "may", "me", "might", "more", "most", "much", "must", "my", "myself", "near",
    "need", "needs", "neither", "no", "nor", "not", "now", "of", "off", "often",
    "on", "once", "one", "only", "or", "other", "others", "otherwise", "our", "ours",
    "ourselves", "out", "over", "own", "per", "perhaps", "rather", "same", "several", "shall",
    "she", "should", "since", "so", "some", "such", "than", "that", "the", "their",
    "theirs", "them", "themselves", "then", "there", "therefore", "these", "they", "this", "those",
    "though", "through", "thus", "to", "too", "two", "three", "under", "until", "up",
    "upon", "us", "use", "used", "uses", "using", "usually", "very", "via", "was",
    "we", "well", "were", "what", "when", "where", "whether", "which", "while", "who",
    "whom", "whose", "why", "will", "with", "within", "without", "would", "yet", "you",
    "your", "yours", "yourself", "yourselves", "can't", "don't", "doesn't", "won't", "called", "known",
    "based", "common", "commonly", "different", "important", "number", "part", "people", "person", "result",
    "results", "small", "large", "type", "types", "way", "ways", "first", "second", "new",
    "information", "see", "section", "following", "whereas", "typically", "certain", "various",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_words_leave_out_stopwords_numbers_and_short_words() {
        let words: Vec<String> = content_words("The 12 types of Kidney-stone in an adult's kidney").into_iter().collect();
        assert_eq!(words, ["adult's", "kidney", "kidney-stone"]);
    }

    #[test]
    fn word_spans_give_offsets_into_the_text() {
        let text = "-Crohn's  disease, (x-ray)";
        let spans: Vec<(usize, &str)> = word_spans(text).collect();
        assert_eq!(spans, [(1, "Crohn's"), (10, "disease"), (20, "x-ray")]);
        assert!(spans.iter().all(|&(at, w)| &text[at..at + w.len()] == w));
    }

    #[test]
    fn a_label_repeating_its_ancestors_is_redundant() {
        assert!(repeats_ancestors("Heparin, anticoagulants", ["Medicine", "Anticoagulants, heparin"]));
        assert!(!repeats_ancestors("Breast cancer", ["Medicine", "Cancer"]));
        assert!(repeats_ancestors("The cancer", ["Cancer"]));
        assert!(repeats_ancestors("Cancers", ["Medicine", "Breast Cancer"]));
        assert!(repeats_ancestors("Therapies", ["Therapy"]) && !repeats_ancestors("Diagnosis", ["Diagnostics"]));
        assert!(alike("Kidney  stones", "kidney stones"));
        assert!(!alike("Kidney stone", "Kidney stones"));
    }
}
