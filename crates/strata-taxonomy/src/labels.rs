//! Node labels: distinctive keywords by class-based TF-IDF among siblings (weighted by the
//! terms' rarity in the whole corpus), or the heading most chunks of the node sit under.

use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Term counts of a class of texts, by term id (see [`Vocabulary`]).
pub type Terms = HashMap<u32, u32>;

/// Unigram and bigram counts of one text, stopwords and numbers left out.
fn term_strings(text: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    let mut prev: Option<String> = None;
    for raw in text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\'')) {
        let word = raw.trim_matches(['-', '\'']).to_lowercase();
        if !is_keyword(&word) {
            prev = None;
            continue;
        }
        if let Some(p) = &prev {
            *out.entry(format!("{p} {word}")).or_default() += 1;
        }
        *out.entry(word.clone()).or_default() += 1;
        prev = Some(word);
    }
    out
}

/// A word that can be a keyword: 3+ characters, a letter first, not a stopword.
fn is_keyword(word: &str) -> bool {
    word.chars().count() >= 3
        && word.chars().next().is_some_and(|c| c.is_alphabetic())
        && !word.chars().all(|c| c.is_numeric() || c == '-')
        && !STOPWORDS.contains(&word)
}

/// Strings numbered in the order first seen (the corpus's terms; the chunks' headings), so
/// that counts and chunks keep small ids rather than strings. Each text is stored once, shared
/// by the lookup table and the list.
#[derive(Default)]
pub struct Vocabulary {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Vocabulary {
    pub fn id(&self, term: &str) -> Option<u32> {
        self.ids.get(term).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Strings numbered so far.
    pub fn size(&self) -> usize {
        self.names.len()
    }

    pub fn intern(&mut self, term: String) -> u32 {
        if let Some(&id) = self.ids.get(term.as_str()) {
            return id;
        }
        let id = self.names.len() as u32;
        let term: Arc<str> = term.into();
        self.names.push(term.clone());
        self.ids.insert(term, id);
        id
    }
}

/// The corpus's vocabulary and document frequencies, and the summed terms of each class (a
/// taxonomy node). A text is counted into its classes as it is added (`add`), so neither the
/// text nor its own term counts outlive its batch: memory follows the vocabulary, not the corpus.
pub struct Corpus {
    pub vocabulary: Vocabulary,
    df: Vec<u32>,
    texts: usize,
    classes: Vec<Terms>,
}

impl Corpus {
    /// An empty corpus of `n_classes` classes.
    pub fn new(n_classes: usize) -> Self {
        Self { vocabulary: Vocabulary::default(), df: Vec::new(), texts: 0, classes: vec![Terms::new(); n_classes] }
    }

    /// Adds `texts` (their terms read in parallel), each counted into every class of
    /// `classes_of` its position in `texts`.
    pub fn add<'c>(&mut self, texts: &[&str], classes_of: impl Fn(usize) -> &'c [usize]) {
        // A step of texts at a time: their term maps (strings) are many times the texts' size.
        const STEP: usize = 1024;
        for (step, part) in texts.chunks(STEP).enumerate() {
            let counted: Vec<HashMap<String, u32>> = part.par_iter().map(|t| term_strings(t)).collect();
            for (i, terms) in counted.into_iter().enumerate() {
                let classes = classes_of(step * STEP + i);
                for (term, k) in terms {
                    let id = self.vocabulary.intern(term);
                    self.df.resize(self.vocabulary.names.len(), 0);
                    self.df[id as usize] += 1;
                    for &c in classes {
                        *self.classes[c].entry(id).or_default() += k;
                    }
                }
                self.texts += 1;
            }
        }
    }

    fn idf(&self, id: u32) -> f64 {
        let df = self.df[id as usize].max(1) as f64;
        (1.0 + self.texts as f64 / df).ln()
    }

    /// The summed terms of the texts counted into `class`.
    pub fn class_terms(&self, class: usize) -> &Terms {
        &self.classes[class]
    }
}

/// Top `n` keywords of each sibling class: c-TF-IDF, tf(t,c) * ln(1 + A / f(t)) with f(t) the
/// term's count over the siblings and A their mean size, times the corpus-wide idf.
/// Bigrams count as one term; a unigram inside a higher-ranked bigram is dropped.
pub fn sibling_keywords(classes: &[&Terms], corpus: &Corpus, n: usize) -> Vec<Vec<String>> {
    let mut total: HashMap<u32, u64> = HashMap::new();
    for c in classes {
        for (&t, &k) in c.iter() {
            *total.entry(t).or_default() += k as u64;
        }
    }
    let sizes: Vec<u64> = classes.iter().map(|c| c.values().map(|&v| v as u64).sum()).collect();
    let mean_size = sizes.iter().sum::<u64>() as f64 / classes.len().max(1) as f64;
    classes
        .iter()
        .zip(&sizes)
        .map(|(class, &size)| {
            let mut scored: Vec<(f64, &str)> = class
                .iter()
                .filter(|(_, &k)| k >= 2 || class.len() < 50)
                .map(|(&t, &k)| {
                    let tf = k as f64 / size.max(1) as f64;
                    let f = total[&t] as f64;
                    (tf * (1.0 + mean_size / f).ln() * corpus.idf(t), corpus.vocabulary.name(t))
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
            let mut picked: Vec<String> = Vec::new();
            for (_, t) in scored {
                if picked.len() == n {
                    break;
                }
                let inside_picked = picked.iter().any(|p| p.split(' ').any(|w| w == t));
                if !inside_picked {
                    picked.push(t.to_string());
                }
            }
            picked
        })
        .collect()
}

/// The heading (document title or section) most of the node's chunks sit under, if at
/// least `min_share` of them do; each chunk is given by the first and last of its headings.
pub fn dominant_heading(headings: &[[Option<&str>; 2]], min_share: f64) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for [first, last] in headings {
        for h in first.iter().chain(last.iter().filter(|&l| Some(*l) != *first)) {
            *counts.entry(h).or_default() += 1;
        }
    }
    let (heading, count) = counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))?;
    (count as f64 >= min_share * headings.len() as f64).then(|| heading.to_string())
}

/// Labels for a set of siblings, unique among them: the dominant heading where one exists,
/// else the two best keywords (as the phrase they form in the text, when they do: "kidney"
/// and "stones" give "Kidney stones"); a clash with a sibling or with the parent's label is
/// resolved with the next keyword.
pub fn sibling_labels(
    parent: &str,
    headings: &[Option<String>],
    keywords: &[Vec<String>],
    classes: &[&Terms],
    vocabulary: &Vocabulary,
) -> Vec<String> {
    let mut used: HashSet<String> = HashSet::from([parent.to_lowercase()]);
    let mut labels = Vec::new();
    for (i, ((heading, kws), class)) in headings.iter().zip(keywords).zip(classes).enumerate() {
        let base = heading.clone().unwrap_or_else(|| match kws.as_slice() {
            [] => format!("Group {}", i + 1),
            [a] => capitalise(a),
            [a, b, ..] => {
                let phrase = [format!("{b} {a}"), format!("{a} {b}")]
                    .into_iter()
                    .find(|p| vocabulary.id(p).and_then(|id| class.get(&id)).is_some_and(|&n| n >= 2));
                phrase.map_or_else(|| format!("{}, {}", capitalise(a), b), |p| capitalise(&p))
            }
        });
        let mut label = base.clone();
        let mut extra = kws.iter().filter(|k| !base.to_lowercase().contains(k.as_str()));
        while used.contains(&label.to_lowercase()) {
            label = match extra.next() {
                Some(k) => format!("{label} ({k})"),
                None => format!("{base} {}", i + 1),
            };
        }
        used.insert(label.to_lowercase());
        labels.push(label);
    }
    labels
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// English function words and words too general to name a topic.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "although",
    "am",
    "among",
    "an",
    "and",
    "any",
    "are",
    "aren't",
    "around",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "due",
    "during",
    "each",
    "either",
    "else",
    "especially",
    "etc",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "generally",
    "get",
    "gets",
    "given",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "i",
    "if",
    "in",
    "include",
    "includes",
    "including",
    "into",
    "is",
    "isn't",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "less",
    "like",
    "likely",
    "made",
    "make",
    "makes",
    "many",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "near",
    "need",
    "needs",
    "neither",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "often",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "others",
    "otherwise",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "perhaps",
    "rather",
    "same",
    "several",
    "shall",
    "she",
    "should",
    "since",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "therefore",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "to",
    "too",
    "two",
    "three",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "use",
    "used",
    "uses",
    "using",
    "usually",
    "very",
    "via",
    "was",
    "we",
    "well",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "can't",
    "don't",
    "doesn't",
    "won't",
    "called",
    "known",
    "based",
    "common",
    "commonly",
    "different",
    "important",
    "include",
    "number",
    "part",
    "people",
    "person",
    "result",
    "results",
    "several",
    "small",
    "large",
    "type",
    "types",
    "way",
    "ways",
    "first",
    "second",
    "new",
    "information",
    "see",
    "section",
    "following",
    "whereas",
    "typically",
    "usually",
    "include",
    "certain",
    "various",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_drop_stopwords_and_numbers() {
        let t = term_strings("The heart failure of 2024 and the 12 heart valves");
        assert!(t.contains_key("heart failure"));
        assert_eq!(t.get("heart"), Some(&2));
        assert!(!t.contains_key("the") && !t.contains_key("2024") && !t.contains_key("12"));
    }

    /// A corpus of `texts` with each text in its own class.
    fn corpus(texts: &[&str]) -> Corpus {
        let own: Vec<[usize; 1]> = (0..texts.len()).map(|i| [i]).collect();
        let mut corpus = Corpus::new(texts.len());
        corpus.add(texts, |i| &own[i]);
        corpus
    }

    #[test]
    fn classes_sum_their_texts_by_id() {
        let mut corpus = Corpus::new(2);
        corpus.add(&["heart valves", "heart failure", "kidney"], |i| [&[0usize][..], &[0], &[1]][i]);
        let class = corpus.class_terms(0);
        let heart = corpus.vocabulary.id("heart").expect("heart");
        assert_eq!(corpus.vocabulary.name(heart), "heart");
        assert_eq!(class[&heart], 2);
        assert!(!class.contains_key(&corpus.vocabulary.id("kidney").expect("kidney")));
    }

    #[test]
    fn siblings_get_distinct_labels() {
        let corpus = corpus(&["", "kidney stones form when kidney stones grow"]);
        let labels = sibling_labels(
            "Kidney",
            &[Some("Treatment".into()), Some("Treatment".into()), None, None],
            &[
                vec!["insulin".into()],
                vec!["statin".into()],
                vec!["kidney".into(), "dialysis".into()],
                vec!["stones".into(), "kidney".into()],
            ],
            &[&Terms::new(), &Terms::new(), corpus.class_terms(0), corpus.class_terms(1)],
            &corpus.vocabulary,
        );
        assert_eq!(labels, vec!["Treatment", "Treatment (statin)", "Kidney, dialysis", "Kidney stones"]);
        // A child never repeats its parent's label.
        let child =
            sibling_labels("Treatment", &[Some("Treatment".into())], &[vec!["insulin".into()]], &[&Terms::new()], &corpus.vocabulary);
        assert_eq!(child, vec!["Treatment (insulin)"]);
    }

    #[test]
    fn keywords_are_distinctive() {
        let corpus = corpus(&["insulin glucose insulin diabetes glucose pancreas", "asthma airway inhaler asthma bronchi airway"]);
        let k = sibling_keywords(&[corpus.class_terms(0), corpus.class_terms(1)], &corpus, 2);
        assert!(k[0].iter().any(|w| w == "insulin" || w == "glucose"), "{k:?}");
        assert!(k[1].iter().any(|w| w == "asthma" || w == "airway"), "{k:?}");
    }
}
