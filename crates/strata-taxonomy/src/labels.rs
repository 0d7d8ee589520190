//! Node labels. Keywords: distinctive terms by class-based TF-IDF among siblings (weighted by
//! the terms' rarity in the whole corpus). Labels: a heading that covers the node both ways,
//! else one phrase of the node's own text chosen by relevance (the caller's score: closeness to
//! the node's centroid, distinctiveness, support) with maximal marginal relevance against the
//! siblings already named, never a label that repeats an ancestor's or a sibling's; keywords
//! only when no phrase qualifies.

use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use strata_core::labels::{alike, is_content_word, repeats_ancestors, stems, words};
use strata_core::vectors::dot;

/// Term counts of a class of texts, by term id (see [`Vocabulary`]).
pub type Terms = HashMap<u32, u32>;

/// A term's count in a class: (class, term, count).
pub type ClassCount = (u32, u32, u32);

/// Unigram and bigram counts of one text, stopwords and numbers left out.
fn term_strings(text: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    let mut prev: Option<String> = None;
    for word in words(text) {
        if !is_content_word(&word) {
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

/// Strings numbered in the order first seen (the corpus's terms; the chunks' headings), so
/// that counts and chunks keep small ids rather than strings. Each text is stored once, shared
/// by the lookup table and the list.
#[derive(Default)]
pub struct Vocabulary {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Vocabulary {
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
    /// The class holding each class.
    parent: Vec<Option<usize>>,
}

impl Corpus {
    /// An empty corpus of classes, `parent[c]` the class holding class `c` (none: a root).
    pub fn new(parent: Vec<Option<usize>>) -> Self {
        Self { vocabulary: Vocabulary::default(), df: Vec::new(), texts: 0, classes: vec![Terms::new(); parent.len()], parent }
    }

    /// Adds `texts` (their terms read in parallel), each counted into the class `class_of`
    /// its position in `texts`; [`Corpus::finish`] sums each class into those above it.
    pub fn add(&mut self, texts: &[&str], class_of: impl Fn(usize) -> usize) {
        // A step of texts at a time: their term maps (strings) are many times the texts' size.
        const STEP: usize = 1024;
        for (step, part) in texts.chunks(STEP).enumerate() {
            let counted: Vec<HashMap<String, u32>> = part.par_iter().map(|t| term_strings(t)).collect();
            for (i, terms) in counted.into_iter().enumerate() {
                let counts = &mut self.classes[class_of(step * STEP + i)];
                for (term, k) in terms {
                    let id = self.vocabulary.intern(term);
                    self.df.resize(self.vocabulary.names.len(), 0);
                    self.df[id as usize] += 1;
                    *counts.entry(id).or_default() += k;
                }
                self.texts += 1;
            }
        }
    }

    /// The counts as a shard saves them: the terms sorted, each with the number of texts
    /// holding it, and every (class, term, count), the term by its place in that order, sorted
    /// by term, then class (term-major, so the shards' counts merge term by term).
    pub fn sorted_counts(&self) -> (Vec<(&str, u32)>, Vec<ClassCount>) {
        let mut order: Vec<u32> = (0..self.vocabulary.size() as u32).collect();
        order.sort_by(|&a, &b| self.vocabulary.name(a).cmp(self.vocabulary.name(b)));
        let mut place = vec![0u32; order.len()];
        order.iter().enumerate().for_each(|(i, &id)| place[id as usize] = i as u32);
        let terms = order.iter().map(|&id| (self.vocabulary.name(id), self.df[id as usize])).collect();
        let mut counts: Vec<(u32, u32, u32)> = (self.classes.iter().enumerate())
            .flat_map(|(c, terms)| terms.iter().map(move |(&id, &k)| (c as u32, id, k)))
            .map(|(c, id, k)| (c, place[id as usize], k))
            .collect();
        counts.sort_unstable_by_key(|&(c, t, _)| (t, c));
        (terms, counts)
    }

    /// Sums every class into the classes above it (deepest first), once all texts are added.
    pub fn finish(mut self) -> Self {
        let depth = |mut c: usize| {
            let mut d = 0;
            while let Some(p) = self.parent[c] {
                (c, d) = (p, d + 1);
            }
            d
        };
        let mut order: Vec<usize> = (0..self.classes.len()).collect();
        order.sort_by_key(|&c| std::cmp::Reverse(depth(c)));
        for c in order {
            if let Some(p) = self.parent[c] {
                let terms = std::mem::take(&mut self.classes[c]);
                let above = &mut self.classes[p];
                terms.iter().for_each(|(&id, &k)| *above.entry(id).or_default() += k);
                self.classes[c] = terms;
            }
        }
        self
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

/// Top `n` keywords of each sibling class with their scores, best first: c-TF-IDF,
/// tf(t,c) * ln(1 + A / f(t)) with f(t) the term's count over the siblings and A their mean
/// size, times the corpus-wide idf. Bigrams count as one term; a unigram inside a
/// higher-ranked bigram is dropped.
pub fn sibling_keywords(classes: &[&Terms], corpus: &Corpus, n: usize) -> Vec<Vec<(String, f64)>> {
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
            let mut picked: Vec<(String, f64)> = Vec::new();
            for (score, t) in scored {
                if picked.len() == n {
                    break;
                }
                let inside_picked = picked.iter().any(|(p, _)| p.split(' ').any(|w| w == t));
                if !inside_picked {
                    picked.push((t.to_string(), score));
                }
            }
            picked
        })
        .collect()
}

/// Whether a heading may name a node: at least `min_share` of the node's chunks sit under it
/// (`in_node`), and at least `min_share` of the heading's chunks in the whole corpus
/// (`in_corpus`) sit in the node, so a heading half of whose chunks are elsewhere names nothing.
pub fn heading_covers(in_node: usize, node_size: usize, in_corpus: usize, min_share: f64) -> bool {
    in_node as f64 >= min_share * node_size as f64 && in_node as f64 >= min_share * in_corpus as f64
}

/// A possible label of a node: its text as it will read, how well it names the node, and its
/// embedding (unit length) for comparing it with its siblings' labels.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub label: String,
    pub relevance: f64,
    pub vector: Vec<f32>,
}

/// What one sibling may be called.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// Chunks in the node (larger siblings choose first).
    pub size: usize,
    /// A heading that covers the node ([`heading_covers`]).
    pub heading: Option<Candidate>,
    /// Phrases of the node's text.
    pub phrases: Vec<Candidate>,
    /// The node's keywords, best first (the last resort).
    pub keywords: Vec<String>,
    /// Headings that cover one of the node's descendants and not the node: the descendant's
    /// name, so not the node's ("Epilepsy" stays with the epilepsy node, its parent is named
    /// otherwise).
    pub reserved: Vec<String>,
}

/// Where a label came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSource {
    Heading,
    Phrase,
    Keywords,
    /// Titled by the recipe's LLM (the label it replaced is kept as `keyword_label`).
    Llm,
}

/// Labels for a set of siblings under `ancestors` (root first), each distinct from the others,
/// adding a word to its ancestors' and leaving its descendants' headings to them. Larger
/// siblings choose first: a covering heading, else the phrase with the best relevance less
/// `diversity` times its cosine to the closest label already given to a sibling (maximal
/// marginal relevance), else keywords.
pub fn label_siblings(ancestors: &[&str], siblings: &[Choices], diversity: f64) -> Vec<(String, LabelSource)> {
    let mut order: Vec<usize> = (0..siblings.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(siblings[i].size), i));
    let mut given: Vec<Option<(String, LabelSource)>> = vec![None; siblings.len()];
    let mut vectors: Vec<&[f32]> = Vec::new();
    let acceptable = |i: usize, label: &str, given: &[Option<(String, LabelSource)>]| {
        let words = stems(label);
        !repeats_ancestors(label, ancestors.iter().copied())
            && !siblings[i].reserved.iter().any(|r| alike(r, label))
            && !given.iter().flatten().any(|(g, _)| alike(g, label) || stems(g) == words)
    };
    for &i in &order {
        if let Some(h) = siblings[i].heading.as_ref().filter(|h| acceptable(i, &h.label, &given)) {
            given[i] = Some((h.label.clone(), LabelSource::Heading));
            vectors.push(&h.vector);
        }
    }
    for &i in &order {
        if given[i].is_some() {
            continue;
        }
        let best = siblings[i]
            .phrases
            .iter()
            .filter(|c| acceptable(i, &c.label, &given))
            .map(|c| {
                let closest = vectors.iter().map(|v| dot(v, &c.vector) as f64).fold(0.0, f64::max);
                (c.relevance - diversity * closest, c)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.label.cmp(&a.1.label)));
        if let Some((_, c)) = best {
            given[i] = Some((c.label.clone(), LabelSource::Phrase));
            vectors.push(&c.vector);
        }
    }
    for &i in &order {
        if given[i].is_none() {
            let label = keyword_label(&siblings[i].keywords, i, |l| acceptable(i, l, &given));
            given[i] = Some((label, LabelSource::Keywords));
        }
    }
    given.into_iter().map(|g| g.expect("every sibling was given a label")).collect()
}

/// The last resort: the first one-word keyword the labels around accept (a two-word keyword
/// may join words that punctuation parts in the text), then the two-word ones, else two
/// joined, else a numbered group.
fn keyword_label(keywords: &[String], position: usize, acceptable: impl Fn(&str) -> bool) -> String {
    let (words, bigrams): (Vec<&String>, Vec<&String>) = keywords.iter().partition(|k| !k.contains(' '));
    let singles = words.into_iter().chain(bigrams).map(|k| capitalise(k));
    let pairs = keywords.windows(2).map(|w| format!("{}, {}", capitalise(&w[0]), w[1]));
    singles.chain(pairs).find(|l| acceptable(l)).unwrap_or_else(|| format!("Group {}", position + 1))
}

/// The first character in upper case, the rest as written ("kidney stones" gives "Kidney
/// stones", "HIV" stays).
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shards_counts_are_saved_sorted_by_term_then_class() {
        let texts = ["heart failure and heart valves", "asthma in children", "heart failure in children"];
        let mut shard = Corpus::new(vec![None, None]);
        shard.add(&texts, |i| i % 2);
        let (terms, counts) = shard.sorted_counts();
        assert!(terms.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(counts.windows(2).all(|w| (w[0].1, w[0].0) < (w[1].1, w[1].0)), "{counts:?}");
        let children = terms.iter().position(|(t, _)| *t == "children").expect("a term") as u32;
        assert_eq!(counts.iter().filter(|c| c.1 == children).map(|c| (c.0, c.2)).collect::<Vec<_>>(), [(0, 1), (1, 1)]);
    }

    #[test]
    fn terms_drop_stopwords_and_numbers() {
        let t = term_strings("The heart failure of 2024 and the 12 heart valves");
        assert!(t.contains_key("heart failure"));
        assert_eq!(t.get("heart"), Some(&2));
        assert!(!t.contains_key("the") && !t.contains_key("2024") && !t.contains_key("12"));
    }

    /// A corpus of `texts` with each text in its own class.
    fn corpus(texts: &[&str]) -> Corpus {
        let mut corpus = Corpus::new(vec![None; texts.len()]);
        corpus.add(texts, |i| i);
        corpus.finish()
    }

    #[test]
    fn classes_sum_their_texts_by_id() {
        let mut corpus = Corpus::new(vec![None, Some(0)]);
        // Class 0 holds class 1: its counts include class 1's.
        corpus.add(&["heart valves", "heart failure", "kidney"], |i| [0, 0, 1][i]);
        let corpus = corpus.finish();
        let class = corpus.class_terms(0);
        let heart = corpus.vocabulary.ids["heart"];
        assert_eq!(corpus.vocabulary.name(heart), "heart");
        assert_eq!(class[&heart], 2);
        let kidney = corpus.vocabulary.ids["kidney"];
        assert_eq!((class[&kidney], corpus.class_terms(1)[&kidney]), (1, 1));
        assert!(!corpus.class_terms(1).contains_key(&heart));
    }

    fn candidate(label: &str, relevance: f64, vector: [f32; 3]) -> Candidate {
        Candidate { label: label.into(), relevance, vector: vector.to_vec() }
    }

    #[test]
    fn a_heading_names_a_node_only_when_it_covers_it_both_ways() {
        assert!(heading_covers(6, 10, 8, 0.5));
        // Half the node under it, but most of the heading's chunks elsewhere.
        assert!(!heading_covers(5, 10, 40, 0.5));
        // All its chunks in the node, but a small part of the node.
        assert!(!heading_covers(3, 10, 3, 0.5));
    }

    #[test]
    fn siblings_choose_heading_then_phrase_never_repeating_ancestors_or_each_other() {
        let siblings = [
            // The largest: its heading repeats the parent, so its best phrase wins.
            Choices {
                size: 30,
                heading: Some(candidate("Anticoagulants", 1.0, [1.0, 0.0, 0.0])),
                phrases: vec![candidate("Heparin anticoagulants", 0.9, [1.0, 0.0, 0.0]), candidate("Blood clots", 0.8, [0.6, 0.8, 0.0])],
                keywords: vec!["heparin".into()],
                ..Default::default()
            },
            // Its best phrase is the one just given to its larger sibling.
            Choices {
                size: 20,
                phrases: vec![candidate("Heparin anticoagulants", 0.95, [1.0, 0.0, 0.0])],
                keywords: vec!["warfarin".into()],
                ..Default::default()
            },
            // Two phrases: the one close to the first sibling's label loses by diversity.
            Choices {
                size: 10,
                heading: None,
                phrases: vec![candidate("Heparin dosing", 0.7, [1.0, 0.0, 0.0]), candidate("Vitamin K", 0.5, [0.0, 1.0, 0.0])],
                ..Default::default()
            },
            Choices { size: 5, heading: Some(candidate("Stroke prevention", 0.1, [0.0, 0.0, 1.0])), ..Default::default() },
        ];
        let labels = label_siblings(&["Medicine", "Anticoagulants"], &siblings, 0.5);
        let text: Vec<&str> = labels.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(text, ["Heparin anticoagulants", "Warfarin", "Vitamin K", "Stroke prevention"]);
        let sources: Vec<LabelSource> = labels.iter().map(|(_, s)| *s).collect();
        assert_eq!(sources, [LabelSource::Phrase, LabelSource::Keywords, LabelSource::Phrase, LabelSource::Heading]);
        // A heading that names a child is not the parent's label.
        let parent = Choices {
            size: 9,
            phrases: vec![candidate("Epilepsy", 0.9, [1.0, 0.0, 0.0]), candidate("Brain", 0.5, [0.0, 1.0, 0.0])],
            reserved: vec!["Epilepsy".into()],
            ..Default::default()
        };
        assert_eq!(label_siblings(&["Medicine"], &[parent], 0.5)[0].0, "Brain");
        // With nothing left to say, a node is a numbered group rather than a repeat.
        let empty = label_siblings(&["Medicine"], &[Choices { keywords: vec!["medicine".into()], ..Default::default() }], 0.5);
        assert_eq!(empty[0].0, "Group 1");
    }

    #[test]
    fn keywords_are_distinctive() {
        let corpus = corpus(&["insulin glucose insulin diabetes glucose pancreas", "asthma airway inhaler asthma bronchi airway"]);
        let k = sibling_keywords(&[corpus.class_terms(0), corpus.class_terms(1)], &corpus, 2);
        assert!(k[0].iter().any(|(w, _)| w == "insulin" || w == "glucose"), "{k:?}");
        assert!(k[1].iter().any(|(w, _)| w == "asthma" || w == "airway"), "{k:?}");
        assert!(k[0][0].1 >= k[0][1].1, "best first: {k:?}");
    }
}
