//! The chunks' headings as the taxonomy uses them: each chunk's first and last heading of its
//! path, counted per heading (the documents holding it, where it is first seen, its chunks in
//! each leaf). A heading found in many documents is generic: it names an aspect such as
//! Symptoms, not a topic, so it is never a label and no phrase is counted from it. Another
//! heading may cover a node (`labels::heading_covers`) and so name it.
//!
//! A run counts its headings in one pass over the chunks ([`count`]). In a sharded run each
//! shard counts its own (`work/headings.parquet` of its part, sorted by heading) and the reduce
//! merges them one heading at a time (`merged::merged_headings`): whether a heading is generic
//! needs only its document count, and whether it covers a node only its chunks in the node and
//! in the corpus, so no table of every heading is held.

use crate::merged::merged_headings;
use crate::{labels, Flat, TaxonomyConfig, TaxonomyError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use strata_core::parquet_io;
use strata_core::passages::per_chunk;
use strata_core::records::HeadingRecord;
use strata_core::{RunDir, StageError};

#[derive(serde::Deserialize)]
struct ChunkHeadings {
    heading_path: Vec<String>,
}

/// One heading's counts so far.
struct Counting {
    documents: u32,
    last_document: usize,
    first_seen: u64,
    leaves: BTreeMap<u32, u32>,
}

/// The headings of the chunks in `chunks`, each chunk of the document and leaf `placed` gives
/// it (in row order; documents ascending, each a run of rows), sorted by heading. One pass, a
/// batch at a time.
pub(crate) fn count(
    chunks: &Path,
    mut placed: impl Iterator<Item = Result<(usize, u32), TaxonomyError>>,
) -> Result<Vec<HeadingRecord>, TaxonomyError> {
    let mut counts: HashMap<String, Counting> = HashMap::new();
    let mut row = 0u64;
    for batch in parquet_io::batches::<ChunkHeadings>(chunks, &["heading_path"])? {
        for chunk in batch? {
            let (document, leaf) = placed.next().ok_or(TaxonomyError::Changed { path: chunks.to_path_buf() })??;
            let (first, last) = (chunk.heading_path.first(), chunk.heading_path.last());
            let distinct = first.into_iter().map(|h| (h, 0)).chain(last.filter(|&l| Some(l) != first).map(|h| (h, 1)));
            for (heading, position) in distinct {
                // Most chunks repeat their document's headings: looked up, not copied.
                if !counts.contains_key(heading) {
                    let first_seen = 2 * row + position;
                    counts
                        .insert(heading.clone(), Counting { documents: 0, last_document: usize::MAX, first_seen, leaves: BTreeMap::new() });
                }
                let counting = counts.get_mut(heading).expect("inserted");
                // The chunks come in document order: a heading's documents are counted without a set.
                if counting.last_document != document {
                    (counting.last_document, counting.documents) = (document, counting.documents + 1);
                }
                *counting.leaves.entry(leaf).or_default() += 1;
            }
            row += 1;
        }
    }
    if placed.next().is_some() {
        return Err(TaxonomyError::Changed { path: chunks.to_path_buf() });
    }
    let mut headings: Vec<HeadingRecord> = counts
        .into_iter()
        .map(|(heading, c)| HeadingRecord {
            heading,
            documents: c.documents,
            first_seen: c.first_seen,
            leaves: c.leaves.keys().copied().collect(),
            chunks: c.leaves.into_values().collect(),
        })
        .collect();
    headings.sort_unstable_by(|a, b| a.heading.cmp(&b.heading));
    Ok(headings)
}

/// A heading that covers a node: the share of the node's chunks under it, and the share of
/// the heading's chunks (in the corpus) inside the node.
#[derive(Debug, Clone)]
pub struct Covering {
    pub heading: String,
    pub of_node: f64,
    pub in_node: f64,
}

/// What the headings give the labels: the generic headings, and each node's covering heading.
pub(crate) struct Headings {
    /// Never a label, and no phrase is counted from them.
    pub generic: HashSet<String>,
    /// Per node, the heading that covers it, the best when several do (none for the root).
    pub covering: Vec<Option<Covering>>,
}

/// The tree the headings are counted into: each node's lineage from the root and size in
/// chunks, and the node of each leaf a count names.
struct CountedTree<'a> {
    lineages: &'a [Vec<usize>],
    sizes: &'a [usize],
    node_of_leaf: &'a dyn Fn(u32) -> Option<u32>,
}

/// The best covering heading of a node so far.
struct Best {
    heading: String,
    in_node: u64,
    in_corpus: u64,
    first_seen: u64,
}

impl Best {
    /// Whether this covers better than `other`: the larger `in_node² / in_corpus`, then the
    /// heading seen first.
    fn beats(&self, other: &Best) -> bool {
        let score = |b: &Best, c: &Best| b.in_node as u128 * b.in_node as u128 * c.in_corpus as u128;
        (score(self, other), other.first_seen) > (score(other, self), self.first_seen)
    }
}

impl Headings {
    /// The headings of the chunks in `chunks`, counted here in the nodes of `flat`.
    pub fn counted(chunks: &Path, flat: &Flat, config: &TaxonomyConfig) -> Result<Self, StageError> {
        let passages = flat.passages.rows()?.zip(flat.passage_leaves());
        let placed = per_chunk(passages.map(|(passage, leaf)| {
            let passage = passage?;
            Ok::<_, TaxonomyError>(((passage.document, leaf?), passage.n_chunks))
        }));
        let counted = count(chunks, placed)?;
        let node_of_leaf = |leaf: u32| Some(leaf);
        let tree = CountedTree { lineages: &flat.lineages, sizes: &flat.sizes, node_of_leaf: &node_of_leaf };
        Self::of(counted.into_iter().map(Ok), flat.documents, &tree, config)
    }

    /// The headings the shards counted (their run directories `parts`, in shard order), merged
    /// one at a time into the nodes of `flat`, whose shards placed its passages.
    pub fn of_shards(parts: &[RunDir], flat: &Flat, config: &TaxonomyConfig) -> Result<Self, StageError> {
        let node_of_leaf = |leaf: u32| flat.node_of_leaf.get(leaf as usize).copied().flatten();
        let tree = CountedTree { lineages: &flat.lineages, sizes: &flat.sizes, node_of_leaf: &node_of_leaf };
        Self::of(merged_headings(parts)?, flat.documents, &tree, config)
    }

    /// The generic headings and each node's covering one, from every heading's counts
    /// (`headings`, one at a time, each once) of the corpus's `documents` documents in `tree`.
    /// A heading is generic when found in more than `generic_heading_share` of the documents
    /// (and in at least 3); it covers a node both ways at `heading_share`
    /// (`labels::heading_covers`).
    fn of(
        headings: impl Iterator<Item = Result<HeadingRecord, StageError>>,
        documents: u64,
        tree: &CountedTree,
        config: &TaxonomyConfig,
    ) -> Result<Self, StageError> {
        let (heading_share, limit) = (config.heading_share, (config.generic_heading_share * documents as f64).max(3.0));
        let mut generic = HashSet::new();
        let mut best: Vec<Option<Best>> = (0..tree.sizes.len()).map(|_| None).collect();
        for heading in headings {
            let heading = heading?;
            if heading.documents as f64 > limit {
                generic.insert(heading.heading);
                continue;
            }
            // The heading's chunks in every node below the root above a leaf holding it.
            let mut in_nodes: BTreeMap<usize, u64> = BTreeMap::new();
            for (&leaf, &chunks) in heading.leaves.iter().zip(&heading.chunks) {
                let node = (tree.node_of_leaf)(leaf).filter(|&n| (n as usize) < tree.lineages.len());
                let node =
                    node.ok_or_else(|| format!("leaf {leaf} of heading `{}`'s counts is not of this run's tree", heading.heading))?;
                tree.lineages[node as usize][1..].iter().for_each(|&id| *in_nodes.entry(id).or_default() += chunks as u64);
            }
            let in_corpus = heading.chunks.iter().map(|&c| c as u64).sum::<u64>();
            for (id, in_node) in in_nodes {
                if !labels::heading_covers(in_node as usize, tree.sizes[id], in_corpus as usize, heading_share) {
                    continue;
                }
                let candidate = Best { heading: heading.heading.clone(), in_node, in_corpus, first_seen: heading.first_seen };
                if best[id].as_ref().is_none_or(|b| candidate.beats(b)) {
                    best[id] = Some(candidate);
                }
            }
        }
        let covering = best
            .into_iter()
            .enumerate()
            .map(|(id, b)| {
                b.map(|b| Covering {
                    of_node: b.in_node as f64 / tree.sizes[id] as f64,
                    in_node: b.in_node as f64 / b.in_corpus as f64,
                    heading: b.heading,
                })
            })
            .collect();
        Ok(Self { generic, covering })
    }
}

/// A chunks file of chunks with these heading paths (and nothing else), for tests.
#[cfg(test)]
pub(crate) fn write_heading_paths(chunks: &Path, paths: &[&[&str]]) {
    let chunk = |(i, path): (usize, &&[&str])| strata_core::records::ChunkRecord {
        chunk_id: format!("c{i}"),
        doc_id: String::new(),
        source: String::new(),
        ordinal: 0,
        heading_path: path.iter().map(|h| h.to_string()).collect(),
        text: String::new(),
        n_tokens: 0,
        byte_start: 0,
        byte_end: 0,
        content_hash: String::new(),
        passage_id: String::new(),
    };
    let rows: Vec<_> = paths.iter().enumerate().map(chunk).collect();
    parquet_io::write_rows(chunks, &strata_core::records::ChunkRecord::fields(), &rows, &[]).expect("chunks");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(heading: &str, documents: u32, first_seen: u64, leaves: &[(u32, u32)]) -> HeadingRecord {
        let (leaves, chunks) = leaves.iter().copied().unzip();
        HeadingRecord { heading: heading.to_string(), documents, first_seen, leaves, chunks }
    }

    #[test]
    fn a_heading_of_many_documents_is_generic_and_the_best_cover_names_a_node() {
        // Root 0 over 1 (leaves 2 and 3) and leaf 4; 10 chunks in each leaf.
        let lineages = vec![vec![0], vec![0, 1], vec![0, 1, 2], vec![0, 1, 3], vec![0, 4]];
        let sizes = [30, 20, 10, 10, 10];
        let node_of_leaf = |leaf: u32| Some(leaf);
        let tree = CountedTree { lineages: &lineages, sizes: &sizes, node_of_leaf: &node_of_leaf };
        let headings = vec![
            record("Asthma", 2, 4, &[(2, 9), (3, 9)]),
            // As good a cover of node 2 as "Wheezing" (all 9 of its chunks there), seen later.
            record("Inhalers", 1, 7, &[(2, 9)]),
            record("Symptoms", 40, 0, &[(2, 5), (3, 5), (4, 5)]),
            record("Wheezing", 1, 6, &[(2, 9)]),
        ];
        let config = TaxonomyConfig { generic_heading_share: 0.2, heading_share: 0.6, ..TaxonomyConfig::default() };
        let got = Headings::of(headings.into_iter().map(Ok), 100, &tree, &config).expect("headings");
        assert_eq!(got.generic, HashSet::from(["Symptoms".to_string()]));
        let names: Vec<Option<&str>> = got.covering.iter().map(|c| c.as_ref().map(|c| c.heading.as_str())).collect();
        // Node 1 holds all 18 of Asthma's chunks (18 of its 20); node 2 holds 9 of Asthma's 18
        // (too few of them) and all of Wheezing's and Inhalers', Wheezing seen first.
        assert_eq!(names, [None, Some("Asthma"), Some("Wheezing"), None, None]);
        let one = got.covering[1].as_ref().expect("a cover");
        assert_eq!((one.of_node, one.in_node), (0.9, 1.0));
    }

    #[test]
    fn counting_names_each_heading_once_per_chunk_with_its_documents_and_first_place() {
        let dir = tempfile::tempdir().expect("dir");
        let chunks = dir.path().join("chunks.parquet");
        let paths: [&[&str]; 4] = [&["Asthma", "Symptoms"], &["Asthma"], &[], &["Gout", "Symptoms", "Asthma"]];
        write_heading_paths(&chunks, &paths);
        // Chunks 0 and 1 of document 0, 2 and 3 of document 1; leaves 5, 5, 6, 7.
        let placed = [(0, 5), (0, 5), (1, 6), (1, 7)].into_iter().map(Ok);
        let counted = count(&chunks, placed).expect("counted");
        assert_eq!(
            counted,
            [record("Asthma", 2, 0, &[(5, 2), (7, 1)]), record("Gout", 1, 6, &[(7, 1)]), record("Symptoms", 1, 1, &[(5, 1)])]
        );
        assert!(matches!(count(&chunks, [(0, 5)].into_iter().map(Ok)), Err(TaxonomyError::Changed { .. })));
    }
}
