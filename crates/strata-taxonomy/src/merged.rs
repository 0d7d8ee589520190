//! The nodes' keywords from the shards' term counts, one term at a time. Each shard saves its
//! terms sorted (`work/terms.parquet`) and their counts per fitted leaf in the same order
//! (`work/leaf_terms.parquet`, term-major), so the shards' files merge like sorted lists: every
//! shard's count of a term comes together, and no table of the whole vocabulary is held. A
//! keyword's score (`labels::sibling_keywords`: c-TF-IDF among siblings times the corpus idf)
//! needs only the term's counts in every node, each node's size and number of distinct terms,
//! and the siblings' mean size, so one pass finds the sizes and a second scores each term and
//! keeps each node's best: the same keywords and scores, bit for bit, as merging every count
//! into a `labels::Corpus`.
//!
//! The shards' heading counts (`merged_headings`) and label phrase counts
//! (`keywords::merged_shortlist`) merge the same way, through [`MergedByKey`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::iter::Peekable;
use std::path::PathBuf;
use strata_core::parquet_io::{self, ParquetIoError};
use strata_core::records::{HeadingRecord, LeafTermRecord, TermRecord};
use strata_core::rundir::{WORK_CHUNKS, WORK_HEADINGS, WORK_LEAF_TERMS, WORK_TERMS};
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

/// One shard's count of a term: the texts holding it and its count per fitted leaf.
struct ShardTerm {
    term: String,
    chunks: u32,
    counts: Vec<(u32, u32)>,
}

/// One shard's terms in order, each with its counts per fitted leaf (the rows of
/// `work/leaf_terms.parquet` that name its row of `work/terms.parquet`).
struct ShardTerms {
    terms: parquet_io::Rows<TermRecord>,
    counts: Peekable<parquet_io::Rows<LeafTermRecord>>,
    /// The row of the next term.
    next: u32,
    counts_path: PathBuf,
}

impl ShardTerms {
    fn open(dir: &RunDir) -> Result<Self, ParquetIoError> {
        let counts_path = dir.path(WORK_LEAF_TERMS);
        Ok(Self {
            terms: parquet_io::rows(&dir.path(WORK_TERMS), &["term", "chunks"])?,
            counts: parquet_io::rows(&counts_path, &["leaf", "term", "count"])?.peekable(),
            next: 0,
            counts_path,
        })
    }

    fn take(&mut self, term: TermRecord) -> Result<ShardTerm, ParquetIoError> {
        let mut counts = Vec::new();
        while let Some(count) = self.counts.next_if(|c| c.as_ref().map_or(true, |c| c.term == self.next)) {
            let count = count?;
            counts.push((count.leaf, count.count));
        }
        if self.counts.peek().is_some_and(|c| c.as_ref().is_ok_and(|c| c.term < self.next)) {
            return Err(ParquetIoError::OutOfStep { path: self.counts_path.clone() });
        }
        self.next += 1;
        Ok(ShardTerm { term: term.term, chunks: term.chunks, counts })
    }
}

impl Iterator for ShardTerms {
    type Item = Result<ShardTerm, ParquetIoError>;

    /// The next term, or an error when counts are left past the last term.
    fn next(&mut self) -> Option<Self::Item> {
        match self.terms.next() {
            Some(term) => Some(term.and_then(|term| self.take(term))),
            None => self.counts.next().map(|_| Err(ParquetIoError::OutOfStep { path: self.counts_path.clone() })),
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
    let shards = parts.iter().map(|dir| Ok((ShardTerms::open(dir)?, dir.path(WORK_TERMS)))).collect::<Result<_, ParquetIoError>>()?;
    for merged in MergedByKey::new(shards, |t: &ShardTerm| t.term.clone(), "term")? {
        let (term, shard_terms) = merged?;
        let mut merged = MergedTerm { term, df: 0, counts: BTreeMap::new() };
        for (_, shard_term) in shard_terms {
            merged.df = merged.df.wrapping_add(shard_term.chunks);
            for (leaf, count) in shard_term.counts {
                let node = node_of_leaf.get(leaf as usize).copied().flatten();
                let node = node.ok_or_else(|| format!("leaf {leaf} of a shard's term counts is not of this run's placements"))?;
                for &id in &lineages[node as usize] {
                    let k = merged.counts.entry(id).or_default();
                    *k = k.wrapping_add(count);
                }
            }
        }
        f(&merged);
    }
    Ok(())
}

/// The shards' heading counts (`work/headings.parquet` of each part, `parts` in shard order),
/// merged one heading at a time: each heading once, in order, with its documents and chunks
/// per fitted leaf summed and where it is first seen among the rows of every shard's chunks.
pub(crate) fn merged_headings(parts: &[RunDir]) -> Result<impl Iterator<Item = Result<HeadingRecord, StageError>>, StageError> {
    // Each shard's first row among the run's: its place `first_seen` counts twice the row.
    let mut first_rows = Vec::with_capacity(parts.len());
    let mut shards = Vec::with_capacity(parts.len());
    let mut rows = 0;
    for dir in parts {
        first_rows.push(rows);
        rows += parquet_io::num_rows(&dir.path(WORK_CHUNKS))?;
        let path = dir.path(WORK_HEADINGS);
        shards.push((parquet_io::rows::<HeadingRecord>(&path, &["heading", "documents", "first_seen", "leaves", "chunks"])?, path));
    }
    let merged = MergedByKey::new(shards, |h: &HeadingRecord| h.heading.clone(), "heading")?;
    Ok(merged.map(move |merged| {
        let (heading, counts) = merged?;
        let (mut documents, mut first_seen, mut leaves) = (0u32, u64::MAX, BTreeMap::<u32, u32>::new());
        for (s, count) in counts {
            if count.leaves.len() != count.chunks.len() {
                return Err(format!(
                    "heading `{heading}` of a shard's counts has {} leaves and {} counts",
                    count.leaves.len(),
                    count.chunks.len()
                )
                .into());
            }
            documents = documents.saturating_add(count.documents);
            first_seen = first_seen.min(2 * first_rows[s] + count.first_seen);
            count.leaves.into_iter().zip(count.chunks).for_each(|(leaf, chunks)| *leaves.entry(leaf).or_default() += chunks);
        }
        Ok(HeadingRecord {
            heading,
            documents,
            first_seen,
            leaves: leaves.keys().copied().collect(),
            chunks: leaves.into_values().collect(),
        })
    }))
}

/// A key with the items of every stream that holds it, each with its stream's index.
pub(crate) type KeyItems<K, T> = (K, Vec<(usize, T)>);

/// Sorted streams, one per shard with the file it reads, merged by key: each key once, in
/// order, with the items of every stream that holds it (by stream). A stream whose keys do not
/// rise (`order` names what they are sorted by) is an error naming its file.
pub(crate) struct MergedByKey<K, T, I: Iterator> {
    streams: Vec<(Peekable<I>, PathBuf)>,
    /// The streams by their next key, the smallest first.
    heap: BinaryHeap<Reverse<(K, usize)>>,
    key: fn(&T) -> K,
    order: &'static str,
}

impl<K: Ord, T, E, I> MergedByKey<K, T, I>
where
    I: Iterator<Item = Result<T, E>>,
    StageError: From<E>,
{
    pub fn new(streams: Vec<(I, PathBuf)>, key: fn(&T) -> K, order: &'static str) -> Result<Self, StageError> {
        let streams: Vec<_> = streams.into_iter().map(|(stream, path)| (stream.peekable(), path)).collect();
        let mut merged = Self { streams, heap: BinaryHeap::new(), key, order };
        for s in 0..merged.streams.len() {
            if let Some(key) = merged.next_key(s)? {
                merged.heap.push(Reverse((key, s)));
            }
        }
        Ok(merged)
    }

    /// Stream `s`'s next key, without taking its item.
    fn next_key(&mut self, s: usize) -> Result<Option<K>, StageError> {
        let stream = &mut self.streams[s].0;
        if stream.peek().is_some_and(|item| item.is_err()) {
            return Err(stream.next().expect("peeked").err().expect("an error").into());
        }
        Ok(stream.peek().map(|item| (self.key)(item.as_ref().ok().expect("not an error"))))
    }

    fn take(&mut self) -> Result<Option<KeyItems<K, T>>, StageError> {
        let Some(Reverse((key, s))) = self.heap.pop() else { return Ok(None) };
        let mut from = vec![s];
        while self.heap.peek().is_some_and(|Reverse((k, _))| *k == key) {
            from.push(self.heap.pop().expect("peeked").0 .1);
        }
        from.sort_unstable();
        let mut items = Vec::with_capacity(from.len());
        for s in from {
            items.push((s, self.streams[s].0.next().expect("peeked")?));
            if let Some(next) = self.next_key(s)? {
                if next <= key {
                    return Err(format!("`{}` is not sorted by {}", self.streams[s].1.display(), self.order).into());
                }
                self.heap.push(Reverse((next, s)));
            }
        }
        Ok(Some((key, items)))
    }
}

impl<K: Ord, T, E, I> Iterator for MergedByKey<K, T, I>
where
    I: Iterator<Item = Result<T, E>>,
    StageError: From<E>,
{
    type Item = Result<KeyItems<K, T>, StageError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.take().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{sibling_keywords, Corpus};

    #[test]
    fn headings_merged_from_shards_are_those_counted_in_one_place() {
        let paths: [&[&str]; 7] = [
            &["Asthma", "Symptoms"],
            &["Asthma"],
            &["Gout", "Symptoms"],
            &[],
            &["Symptoms", "Asthma"],
            &["Gout"],
            &["Diabetes", "Treatment", "Gout"],
        ];
        // Each chunk's document and fitted leaf; documents 0-2 make shard 0, 3-4 shard 1.
        let placed = [(0, 1), (0, 2), (1, 0), (2, 2), (3, 1), (4, 0), (4, 1)];
        let dir = tempfile::tempdir().expect("dir");
        let whole = dir.path().join("chunks.parquet");
        crate::headings::write_heading_paths(&whole, &paths);
        let expected = crate::headings::count(&whole, placed.iter().map(|&p| Ok(p))).expect("counted");
        let mut shards = Vec::new();
        for (s, rows) in [0..4, 4..7].into_iter().enumerate() {
            let shard = RunDir::new(dir.path().join(format!("part-{s}")));
            std::fs::create_dir_all(shard.path(WORK_CHUNKS).parent().expect("work")).expect("work");
            crate::headings::write_heading_paths(&shard.path(WORK_CHUNKS), &paths[rows.clone()]);
            let counted = crate::headings::count(&shard.path(WORK_CHUNKS), placed[rows].iter().map(|&p| Ok(p))).expect("counted");
            parquet_io::write_rows(&shard.path(WORK_HEADINGS), &HeadingRecord::fields(), &counted, &[]).expect("headings");
            shards.push(shard);
        }
        let merged: Vec<HeadingRecord> = merged_headings(&shards).expect("merged").collect::<Result<_, _>>().expect("merged");
        assert_eq!(merged, expected);
        assert_eq!(merged.iter().map(|h| h.heading.as_str()).collect::<Vec<_>>(), ["Asthma", "Diabetes", "Gout", "Symptoms"]);
    }

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
