//! The nodes' keywords from the shards' term counts, one term at a time. Each shard saves its
//! terms sorted (`work/terms.parquet`) and their counts per fitted leaf in the same order
//! (`work/leaf_terms.parquet`, term-major), so the shards' files merge like sorted lists: every
//! shard's count of a term comes together, and no table of the whole vocabulary is held. A
//! keyword's score (`labels::sibling_keywords`: c-TF-IDF among siblings times the corpus idf)
//! needs only the term's counts in every node, each node's size and number of distinct terms,
//! and the siblings' mean size, so one pass finds the sizes and a second scores each term and
//! keeps each node's best: the same keywords and scores, bit for bit, as merging every count
//! into a `labels::Corpus`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::iter::Peekable;
use strata_core::parquet_io::{self, ParquetIoError};
use strata_core::records::{LeafTermRecord, TermRecord};
use strata_core::rundir::{WORK_CHUNKS, WORK_LEAF_TERMS, WORK_TERMS};
use strata_core::{RunDir, Shape, StageError};

/// Each node's keywords with their scores, best first, and the vocabulary's size.
pub(crate) struct MergedKeywords {
    pub keywords: Vec<Vec<(String, f64)>>,
    pub vocabulary_terms: u64,
}

/// The keywords (`n` a node) of the tree `shape` from the counts of the shards (their run
/// directories `parts`), each fitted leaf's counted into the node `node_of_leaf` gives it.
pub(crate) fn merged_keywords(
    parts: &[RunDir],
    shape: &Shape,
    node_of_leaf: &[Option<u32>],
    n: usize,
) -> Result<MergedKeywords, StageError> {
    let nodes = shape.len();
    let lineages: Vec<Vec<u32>> = (0..nodes as u32).map(|id| shape.lineage(id)).collect();
    // First pass: each node's size (its terms' counts summed) and distinct terms.
    let (mut sizes, mut distinct, mut texts, mut vocabulary) = (vec![0u64; nodes], vec![0usize; nodes], 0usize, 0u64);
    for dir in parts {
        texts += parquet_io::num_rows(&dir.path(WORK_CHUNKS))? as usize;
    }
    each_term(parts, node_of_leaf, &lineages, |term| {
        vocabulary += 1;
        for (&node, &k) in &term.counts {
            sizes[node as usize] += k as u64;
            distinct[node as usize] += 1;
        }
    })?;
    // Per group of siblings (the root alone, then each node's children), their mean size.
    let mut groups: Vec<Vec<u32>> = vec![vec![0]];
    groups.extend((0..nodes as u32).map(|id| shape.children(id).to_vec()).filter(|kids| !kids.is_empty()));
    let mut group_of = vec![0usize; nodes];
    let mean: Vec<f64> = groups
        .iter()
        .enumerate()
        .map(|(g, kids)| {
            kids.iter().for_each(|&c| group_of[c as usize] = g);
            kids.iter().map(|&c| sizes[c as usize]).sum::<u64>() as f64 / kids.len().max(1) as f64
        })
        .collect();
    // Second pass: each term scored in every node that holds it; a node keeps its best.
    let mut best: Vec<BinaryHeap<Ranked>> = vec![BinaryHeap::new(); nodes];
    // A picked bigram hides at most two unigrams below it: the best 3n give the same picks.
    let kept = 3 * n;
    each_term(parts, node_of_leaf, &lineages, |term| {
        let idf = (1.0 + texts as f64 / term.df.max(1) as f64).ln();
        let mut total: BTreeMap<usize, u64> = BTreeMap::new();
        term.counts.iter().for_each(|(&node, &k)| *total.entry(group_of[node as usize]).or_default() += k as u64);
        for (&node, &k) in &term.counts {
            let c = node as usize;
            if !(k >= 2 || distinct[c] < 50) {
                continue;
            }
            let tf = k as f64 / sizes[c].max(1) as f64;
            let g = group_of[c];
            let score = tf * (1.0 + mean[g] / total[&g] as f64).ln() * idf;
            best[c].push(Ranked { score, term: term.term.clone() });
            if best[c].len() > kept {
                best[c].pop();
            }
        }
    })?;
    let keywords = best.into_iter().map(|heap| pick(heap.into_sorted_vec(), n)).collect();
    Ok(MergedKeywords { keywords, vocabulary_terms: vocabulary })
}

/// The best `n` of `ranked` (best first), a unigram inside a better bigram already picked left
/// out (as `labels::sibling_keywords` picks).
fn pick(ranked: Vec<Ranked>, n: usize) -> Vec<(String, f64)> {
    let mut picked: Vec<(String, f64)> = Vec::new();
    for Ranked { score, term } in ranked {
        if picked.len() == n {
            break;
        }
        if !picked.iter().any(|(p, _)| p.split(' ').any(|w| w == term)) {
            picked.push((term, score));
        }
    }
    picked
}

/// A term's score in a node: ordered best first (the higher score, then the earlier term), so
/// that a heap's top is the worst kept.
#[derive(Clone)]
struct Ranked {
    score: f64,
    term: String,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score).then_with(|| self.term.cmp(&other.term))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// One term with every shard's counts added up: the texts holding it and its count in each
/// node (every node above a leaf it was counted in).
struct MergedTerm {
    term: String,
    df: u32,
    counts: BTreeMap<u32, u32>,
}

/// One shard's terms in order, each with its counts per fitted leaf.
struct ShardTerms {
    terms: Peekable<parquet_io::Rows<TermRecord>>,
    counts: Peekable<parquet_io::Rows<LeafTermRecord>>,
    /// The row of the next term.
    next: u32,
    counts_path: std::path::PathBuf,
}

impl ShardTerms {
    fn open(dir: &RunDir) -> Result<Self, ParquetIoError> {
        let counts_path = dir.path(WORK_LEAF_TERMS);
        Ok(Self {
            terms: parquet_io::rows(&dir.path(WORK_TERMS), &["term", "chunks"])?.peekable(),
            counts: parquet_io::rows(&counts_path, &["leaf", "term", "count"])?.peekable(),
            next: 0,
            counts_path,
        })
    }

    /// The next term's text, without taking it.
    fn peek(&mut self) -> Result<Option<&str>, ParquetIoError> {
        if self.terms.peek().is_some_and(|t| t.is_err()) {
            return Err(self.terms.next().expect("peeked").expect_err("an error"));
        }
        Ok(self.terms.peek().map(|t| t.as_ref().expect("not an error").term.as_str()))
    }

    /// The next term, its counts added into `into` (by fitted leaf).
    fn take(
        &mut self,
        into: &mut MergedTerm,
        mut add: impl FnMut(&mut MergedTerm, u32, u32) -> Result<(), StageError>,
    ) -> Result<(), StageError> {
        let term = self.terms.next().expect("peeked")?;
        into.df = into.df.wrapping_add(term.chunks);
        while let Some(count) = self.counts.next_if(|c| c.as_ref().map_or(true, |c| c.term == self.next)) {
            let count = count?;
            add(into, count.leaf, count.count)?;
        }
        if self.counts.peek().is_some_and(|c| c.as_ref().is_ok_and(|c| c.term < self.next)) {
            return Err(ParquetIoError::OutOfStep { path: self.counts_path.clone() }.into());
        }
        self.next += 1;
        Ok(())
    }

    /// Fails when counts are left past the last term.
    fn finish(&mut self) -> Result<(), ParquetIoError> {
        match self.counts.next() {
            None => Ok(()),
            Some(_) => Err(ParquetIoError::OutOfStep { path: self.counts_path.clone() }),
        }
    }
}

/// Every term of the shards, in order, with its counts merged and summed up the tree, handed
/// to `f` one at a time.
fn each_term(
    parts: &[RunDir],
    node_of_leaf: &[Option<u32>],
    lineages: &[Vec<u32>],
    mut f: impl FnMut(&MergedTerm),
) -> Result<(), StageError> {
    let mut shards: Vec<ShardTerms> = parts.iter().map(ShardTerms::open).collect::<Result<_, _>>()?;
    // The shards by their next term (the smallest first).
    let mut heap: BinaryHeap<std::cmp::Reverse<(String, usize)>> = BinaryHeap::new();
    for (s, shard) in shards.iter_mut().enumerate() {
        if let Some(term) = shard.peek()? {
            heap.push(std::cmp::Reverse((term.to_string(), s)));
        }
    }
    let add = |into: &mut MergedTerm, leaf: u32, count: u32| -> Result<(), StageError> {
        let node = node_of_leaf.get(leaf as usize).copied().flatten();
        let node = node.ok_or_else(|| format!("leaf {leaf} of a shard's term counts is not of this run's placements"))?;
        for &id in &lineages[node as usize] {
            let k = into.counts.entry(id).or_default();
            *k = k.wrapping_add(count);
        }
        Ok(())
    };
    while let Some(std::cmp::Reverse((term, s))) = heap.pop() {
        let mut merged = MergedTerm { term, df: 0, counts: BTreeMap::new() };
        let mut from = vec![s];
        while heap.peek().is_some_and(|std::cmp::Reverse((t, _))| *t == merged.term) {
            from.push(heap.pop().expect("peeked").0 .1);
        }
        for s in from {
            shards[s].take(&mut merged, add)?;
            if let Some(next) = shards[s].peek()? {
                if next <= merged.term.as_str() {
                    return Err(format!("`{}` is not sorted by term", parts[s].path(WORK_TERMS).display()).into());
                }
                heap.push(std::cmp::Reverse((next.to_string(), s)));
            }
        }
        f(&merged);
    }
    shards.iter_mut().try_for_each(ShardTerms::finish)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{sibling_keywords, Corpus};

    #[test]
    fn keywords_merged_term_by_term_from_shards_are_those_of_every_count_in_one_corpus() {
        let texts = [
            "heart failure and heart valves",
            "asthma in children",
            "heart failure in children",
            "insulin and insulin pumps",
            "asthma attacks in children",
            "heart valves replaced",
            "insulin pumps for children",
        ];
        // Root 0 over 1 and 4; 1 over the leaves 2 and 3. The fitted leaves 0, 1, 2 became
        // nodes 2, 3 and 4; each text's fitted leaf.
        let parents = vec![None, Some(0), Some(1), Some(1), Some(0)];
        let (node_of_leaf, leaf_of) = (vec![Some(2), Some(3), Some(4)], [0, 1, 0, 2, 1, 0, 2]);
        let mut whole = Corpus::new(parents.iter().map(|p| p.map(|p: u32| p as usize)).collect());
        whole.add(&texts, |i| node_of_leaf[leaf_of[i]].expect("a node") as usize);
        let whole = whole.finish();
        let shape = Shape::from_parents(parents).expect("shape");
        let expected = |n: usize| {
            let mut expected = vec![Vec::new(); shape.len()];
            expected[0] = sibling_keywords(&[whole.class_terms(0)], &whole, n).remove(0);
            for parent in 0..shape.len() as u32 {
                let kids = shape.children(parent);
                let classes: Vec<_> = kids.iter().map(|&c| whole.class_terms(c as usize)).collect();
                kids.iter().zip(sibling_keywords(&classes, &whole, n)).for_each(|(&c, k)| expected[c as usize] = k);
            }
            expected
        };

        let dir = tempfile::tempdir().expect("dir");
        let mut shards = Vec::new();
        for (s, (start, end)) in [(0, 3), (3, 7)].into_iter().enumerate() {
            let shard = RunDir::new(dir.path().join(format!("part-{s}")));
            std::fs::create_dir_all(shard.path(WORK_TERMS).parent().expect("work")).expect("work");
            let mut counted = Corpus::new(vec![None; 3]);
            counted.add(&texts[start..end], |i| leaf_of[start + i]);
            let (terms, counts) = counted.sorted_counts();
            let terms: Vec<TermRecord> = terms.into_iter().map(|(term, chunks)| TermRecord { term: term.to_string(), chunks }).collect();
            let counts: Vec<LeafTermRecord> = counts.into_iter().map(|(leaf, term, count)| LeafTermRecord { leaf, term, count }).collect();
            parquet_io::write_rows(&shard.path(WORK_TERMS), &TermRecord::fields(), &terms, &[]).expect("terms");
            parquet_io::write_rows(&shard.path(WORK_LEAF_TERMS), &LeafTermRecord::fields(), &counts, &[]).expect("counts");
            // The chunks file is only counted: as many rows as the shard's texts.
            parquet_io::write_rows(&shard.path(WORK_CHUNKS), &TermRecord::fields(), &terms[..end - start], &[]).expect("chunks");
            shards.push(shard);
        }
        // Few keywords (the heaps then drop terms) and more than some nodes have.
        for n in [1, 2, 3, 8] {
            let merged = merged_keywords(&shards, &shape, &node_of_leaf, n).expect("merged");
            assert_eq!(merged.vocabulary_terms, whole.vocabulary.size() as u64);
            assert_eq!(merged.keywords, expected(n), "{n} keywords");
        }
        assert!(expected(3).iter().all(|k| !k.is_empty()) && expected(3)[1].len() == 3);
    }
}
