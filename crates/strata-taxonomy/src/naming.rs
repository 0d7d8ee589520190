//! Naming the nodes, top-down: each node's keywords among its siblings, its candidate
//! phrases (a second read of the chunk texts and headings, counting only phrases that hold one
//! of the node's keywords; in a sharded run, by the shards, `keywords`), the phrases embedded with the run's embedder and ranked against
//! the node's centroid, then each set of siblings labelled together (`labels::label_siblings`).

use crate::headings::{Covering, Headings};
use crate::labels::{self, capitalise, Candidate, Choices, LabelSource};
use crate::phrases::{NodePhrases, Tally};
use crate::{Flat, TaxonomyError, TaxonomyStage};
use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use strata_core::labels::normalise;
use strata_core::vectors::dot;
use strata_core::{parquet_io, TaxonomyTree};

/// Weights of a phrase's distinctiveness (its best keyword's c-TF-IDF score over the node's
/// best) and support (share of the node's chunks that hold it), added to its cosine with the
/// node's centroid: closeness alone favours the domain's generic words.
const DISTINCTIVENESS_WEIGHT: f64 = 0.5;
const SUPPORT_WEIGHT: f64 = 0.5;

/// Every node's label, keywords and where its label came from, in id order.
pub struct Named {
    pub labels: Vec<String>,
    pub keywords: Vec<Vec<String>>,
    pub sources: Vec<Option<LabelSource>>,
    /// For a node named by a heading, how well the heading covers it.
    pub coverings: Vec<Option<Covering>>,
    pub phrases_embedded: usize,
}

impl Named {
    pub fn count(&self, source: LabelSource) -> u64 {
        self.sources.iter().filter(|s| **s == Some(source)).count() as u64
    }

    /// Whether a label is, by the way it was made, one phrase of its node's text or headings:
    /// a heading, a phrase, or a one-word keyword (a two-word keyword counts its words across
    /// punctuation, so it may not stand in the text as written).
    pub fn verbatim(&self, tree: &TaxonomyTree, id: u32) -> bool {
        let node = tree.node(id);
        match self.sources[id as usize] {
            Some(LabelSource::Keywords) => node.keywords.iter().any(|k| !k.contains(' ') && labels::capitalise(k) == node.label),
            Some(LabelSource::Llm) | None => false,
            Some(_) => true,
        }
    }
}

/// Names every node of `flat` (the root is the domain), ranking phrases by their closeness
/// to each node's `centroids`.
/// `scored` are each node's keywords with their scores ([`keywords`]), `tallies` the phrases
/// that hold them ([`count_phrases`]).
pub fn name_nodes(
    flat: &Flat,
    headings: &Headings,
    centroids: &[Vec<f32>],
    scored: Vec<Vec<(String, f64)>>,
    shortlist: Shortlist,
    stage: &TaxonomyStage,
) -> Result<Named, TaxonomyError> {
    let config = &stage.config;
    let n = flat.shape.len();
    tracing::info!(phrases = shortlist.counted, nodes = n, "label phrases counted");
    let covering = &headings.covering;
    let shortlist = shortlist.lists;

    // One embedding call over every distinct phrase and heading, in sorted order.
    let texts: BTreeSet<String> =
        shortlist.iter().flatten().map(|(key, _, _)| key.clone()).chain(covering.iter().flatten().map(|h| normalise(&h.heading))).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embedded = embed(stage, &texts, centroids.first().map_or(0, Vec::len))?;
    let vector_of: HashMap<&str, &Vec<f32>> = texts.iter().copied().zip(&embedded).collect();

    let mut named = Named {
        labels: vec![String::new(); n],
        keywords: scored.into_iter().map(|k| k.into_iter().map(|(t, _)| t).collect()).collect(),
        sources: vec![None; n],
        coverings: vec![None; n],
        phrases_embedded: texts.len(),
    };
    named.labels[0] = stage.domain.clone();
    for parent in 0..n as u32 {
        let kids = flat.shape.children(parent);
        if kids.is_empty() {
            continue;
        }
        let choices: Vec<Choices> = kids
            .iter()
            .map(|&id| {
                let id = id as usize;
                let candidate = |label: String, key: &str, prior: f64| {
                    let vector = vector_of[key].clone();
                    Candidate { relevance: dot(&vector, &centroids[id]) as f64 + prior, label, vector }
                };
                Choices {
                    size: flat.sizes[id],
                    heading: covering[id].as_ref().map(|h| candidate(h.heading.clone(), &normalise(&h.heading), 0.0)),
                    phrases: shortlist[id].iter().map(|(key, label, prior)| candidate(label.clone(), key, *prior)).collect(),
                    keywords: named.keywords[id].clone(),
                    // A heading covering the node and a descendant both is the node's.
                    reserved: flat
                        .shape
                        .subtree(id as u32)
                        .skip(1)
                        .filter_map(|d| covering[d as usize].as_ref().map(|h| h.heading.clone()))
                        .filter(|h| Some(h) != covering[id].as_ref().map(|own| &own.heading))
                        .collect(),
                }
            })
            .collect();
        let lineage = flat.shape.lineage(parent);
        let ancestors: Vec<&str> = lineage.iter().map(|&a| named.labels[a as usize].as_str()).collect();
        let given = labels::label_siblings(&ancestors, &choices, config.label_diversity);
        for ((&id, (label, source)), choice) in kids.iter().zip(given).zip(&choices) {
            log_choice(id, &label, source, choice);
            if source == LabelSource::Heading {
                named.coverings[id as usize] = covering[id as usize].clone();
            }
            named.labels[id as usize] = label;
            named.sources[id as usize] = Some(source);
        }
    }
    Ok(named)
}

/// With `-vv`: the label a node got and its five best phrases, to see why.
fn log_choice(id: u32, label: &str, source: LabelSource, choice: &Choices) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let mut best: Vec<(&str, f64)> = choice.phrases.iter().map(|c| (c.label.as_str(), c.relevance)).collect();
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        best.truncate(5);
        tracing::debug!(node = id, %label, ?source, heading = ?choice.heading.as_ref().map(|h| &h.label), ?best, "label");
    }
}

/// A phrase that may name a node: its identity (lowercase), how it reads, and its score
/// before any embedding.
pub type Shortlisted = (String, String, f64);

/// Each node's best phrases (none for the root), and how many phrases were counted.
pub struct Shortlist {
    pub lists: Vec<Vec<Shortlisted>>,
    pub counted: usize,
}

impl Shortlist {
    pub fn new(nodes: usize) -> Self {
        Self { lists: vec![Vec::new(); nodes], counted: 0 }
    }

    /// Phrase `key` of node `id`, with its `tally`, considered: kept among the node's best
    /// `keep` by distinctiveness and support when held by at least two of the node's chunks (one
    /// in a node of one chunk). `phrases` knows the node's keywords (`scored`).
    pub fn consider(&mut self, at: Considered, key: &str, tally: &Tally, keep: usize) {
        let Considered { id, size, phrases, scored } = at;
        self.counted += 1;
        if id == 0 || (tally.chunks as usize) < size.min(2) {
            return;
        }
        let top = scored[id].first().map_or(1.0, |(_, s)| s.max(f64::MIN_POSITIVE));
        let distinct = phrases.seeds_in(id, key).iter().map(|&s| scored[id][s].1 / top).fold(0.0, f64::max);
        let support = tally.chunks as f64 / size as f64;
        let list = &mut self.lists[id];
        list.push((key.to_string(), capitalise(tally.surface()), DISTINCTIVENESS_WEIGHT * distinct + SUPPORT_WEIGHT * support));
        if list.len() >= 2 * keep.max(1) {
            best_first(list, keep);
        }
    }

    /// Each list its best `keep`, best first.
    pub fn finish(mut self, keep: usize) -> Self {
        self.lists.iter_mut().for_each(|list| best_first(list, keep));
        self
    }
}

/// Where a phrase is considered: node `id` of `size` chunks, the nodes' seeds (`phrases`) and
/// keywords with their scores (`scored`).
#[derive(Clone, Copy)]
pub struct Considered<'a> {
    pub id: usize,
    pub size: usize,
    pub phrases: &'a NodePhrases,
    pub scored: &'a [Vec<(String, f64)>],
}

fn best_first(list: &mut Vec<Shortlisted>, keep: usize) {
    list.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    list.truncate(keep);
}

/// The shortlist of the phrases counted here (`tallies`).
pub fn shortlist_of(flat: &Flat, tallies: &NodePhrases, scored: &[Vec<(String, f64)>], keep: usize) -> Shortlist {
    let mut shortlist = Shortlist::new(flat.shape.len());
    for (id, phrases) in tallies.tallies.iter().enumerate() {
        let at = Considered { id, size: flat.sizes[id], phrases: tallies, scored };
        phrases.iter().for_each(|(key, tally)| shortlist.consider(at, key, tally, keep));
    }
    shortlist.finish(keep)
}

/// Each node's keywords with their scores, computed among its siblings (the root alone).
pub fn keywords(flat: &Flat, corpus: &labels::Corpus, n: usize) -> Vec<Vec<(String, f64)>> {
    let mut out = vec![Vec::new(); flat.shape.len()];
    out[0] = labels::sibling_keywords(&[corpus.class_terms(0)], corpus, n).into_iter().next().unwrap_or_default();
    for parent in 0..flat.shape.len() as u32 {
        let kids = flat.shape.children(parent);
        let classes: Vec<&labels::Terms> = kids.iter().map(|&id| corpus.class_terms(id as usize)).collect();
        for (&id, k) in kids.iter().zip(labels::sibling_keywords(&classes, corpus, n)) {
            out[id as usize] = k;
        }
    }
    out
}

/// Texts matched in parallel between two recordings.
const PHRASE_STEP: usize = 1024;

#[derive(serde::Deserialize)]
struct ChunkWords {
    text: String,
    heading_path: Vec<String>,
}

/// Each node's keywords without their scores: the seeds its label phrases must hold.
pub fn seeds(scored: &[Vec<(String, f64)>]) -> Vec<Vec<String>> {
    scored.iter().map(|k| k.iter().map(|(t, _)| t.clone()).collect()).collect()
}

/// The phrases of the texts and headings of the chunks in `chunks` (read again, a batch at a
/// time; the `generic` headings left out), counted into each node `nodes_of(leaf)` gives a
/// chunk of that leaf (those below the root it belongs to; `leaves`: each chunk's, in row
/// order) where they hold one of the node's `seeds`.
pub fn count_phrases<'a>(
    chunks: &Path,
    generic: &HashSet<String>,
    seeds: &[Vec<String>],
    mut leaves: impl Iterator<Item = Result<u32, TaxonomyError>>,
    nodes_of: impl Fn(u32) -> &'a [usize] + Sync,
) -> Result<NodePhrases, TaxonomyError> {
    let mut nodes = NodePhrases::new(seeds);
    let mut of_batch = Vec::new();
    for batch in parquet_io::batches::<ChunkWords>(chunks, &["text", "heading_path"])? {
        let batch = batch?;
        crate::passes::next_leaves(&mut leaves, batch.len(), &mut of_batch, chunks)?;
        // A step of texts at a time: their matched phrases are many times the texts' size.
        for (step, part) in batch.chunks(PHRASE_STEP).enumerate() {
            let first = step * PHRASE_STEP;
            let found: Vec<_> = part
                .par_iter()
                .enumerate()
                .map(|(i, c)| {
                    let headings = c.heading_path.iter().filter(|h| !generic.contains(*h));
                    let texts: Vec<&str> = std::iter::once(&c.text).chain(headings).map(String::as_str).collect();
                    nodes.matching(&texts, nodes_of(of_batch[first + i]))
                })
                .collect();
            found.into_iter().for_each(|m| nodes.record(m));
        }
    }
    Ok(nodes)
}

/// The phrases embedded by the run's embedder, checked against the chunks' dimension.
fn embed(stage: &TaxonomyStage, texts: &[&str], dim: usize) -> Result<Vec<Vec<f32>>, TaxonomyError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let vectors = stage.embedder.embed(texts).map_err(TaxonomyError::Embed)?;
    let got_dim = vectors.first().map_or(0, Vec::len);
    if vectors.len() != texts.len() || vectors.iter().any(|v| v.len() != dim) {
        return Err(TaxonomyError::EmbedShape { asked: texts.len(), got: vectors.len(), dim: got_dim, expected: dim });
    }
    Ok(vectors)
}
