//! What evaluation reads from a finished run: chunks (in corpus order), their vectors, the
//! taxonomy and the documents with their metadata; and the same run seen as passages (the
//! units selection chooses among), for coverage.

use crate::EvalError;
use std::collections::HashMap;
use strata_core::manifest::Manifest;
use strata_core::parquet_io::{batches, read_rows, VectorsInStep};
use strata_core::records::{DocumentRecord, TaxonomyNode};
use strata_core::rundir::{CHUNKS, EMBEDDINGS, MANIFEST, PASSAGES, TAXONOMY, WORK_DOCUMENTS};
use strata_core::{Matrix, RunDir, TaxonomyTree};

/// A chunk as evaluation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkInfo {
    pub chunk_id: String,
    pub doc_id: String,
    /// Its leaf.
    pub node_id: u32,
    pub n_tokens: u32,
    /// Marked as a near-duplicate of another chunk by the taxonomy stage.
    pub duplicate: bool,
    /// Taken by the run's own selection.
    pub selected: bool,
}

/// The columns of `chunks.parquet` evaluation reads.
#[derive(serde::Deserialize)]
struct PublishedRow {
    chunk_id: String,
    doc_id: String,
    node_id: u32,
    n_tokens: u32,
    duplicate_of: Option<String>,
    selected: bool,
}

/// The columns of `passages.parquet` evaluation reads.
#[derive(serde::Deserialize)]
struct PassageRow {
    passage_id: String,
    doc_id: String,
    chunk_ids: Vec<String>,
    node_id: u32,
    n_tokens: u32,
    duplicate_of: Option<String>,
    selected: bool,
}

/// A run directory loaded for evaluation.
#[derive(Debug, Clone)]
pub struct RunData {
    /// In corpus order (the order of `chunks.parquet`: documents as ingested, then ordinal).
    pub chunks: Vec<ChunkInfo>,
    /// Row `i` is the L2-normalised vector of `chunks[i]`.
    pub vectors: Matrix,
    pub tree: TaxonomyTree,
    pub documents: Vec<DocumentRecord>,
    /// The corpus's tokens as the chunk stage recorded them (selection's budgets are fractions of it).
    pub corpus_tokens: u64,
}

impl RunData {
    /// Reads the published chunks (six columns, no text) and their vectors a batch at a time
    /// in step, so the vectors are held once; chunk ids must agree row by row.
    pub fn load(run: &RunDir) -> Result<Self, EvalError> {
        let mut vectors = VectorsInStep::open(&run.path(EMBEDDINGS))?;
        let mut chunks = Vec::new();
        let columns = ["chunk_id", "doc_id", "node_id", "n_tokens", "duplicate_of", "selected"];
        for batch in batches::<PublishedRow>(&run.path(CHUNKS), &columns)? {
            let batch = batch?;
            vectors.extend(batch.iter().map(|c| c.chunk_id.as_str()))?;
            chunks.extend(batch.into_iter().map(|c| ChunkInfo {
                duplicate: c.duplicate_of.is_some(),
                chunk_id: c.chunk_id,
                doc_id: c.doc_id,
                node_id: c.node_id,
                n_tokens: c.n_tokens,
                selected: c.selected,
            }));
        }
        let vectors = vectors.finish()?;
        let nodes: Vec<TaxonomyNode> = read_rows(&run.path(TAXONOMY))?;
        let tree = TaxonomyTree::new(nodes).map_err(|source| EvalError::Tree { path: run.path(TAXONOMY), source })?;
        let documents: Vec<DocumentRecord> = read_rows(&run.path(WORK_DOCUMENTS))?;
        let manifest_path = run.path(MANIFEST);
        let manifest = Manifest::load(&manifest_path)?.ok_or_else(|| EvalError::NoManifest { path: manifest_path.clone() })?;
        let chunk = manifest.stages.chunk.ok_or_else(|| EvalError::NoManifest { path: manifest_path.clone() })?;
        if let Some(c) = chunks.iter().find(|c| tree.get(c.node_id).is_err()) {
            return Err(EvalError::Mismatch {
                path: run.path(TAXONOMY),
                chunks: run.path(CHUNKS),
                message: format!("chunk `{}` sits in node {}, which the taxonomy lacks", c.chunk_id, c.node_id),
            });
        }
        Ok(Self { chunks, vectors, tree, documents, corpus_tokens: chunk.summary.corpus_tokens })
    }

    /// The same run with passages as the units (what selection chooses among): each passage
    /// of `passages.parquet` with its target tokens, leaf, duplicate mark and selection, its
    /// vector the normalised mean of its chunks'. Coverage is measured on this view.
    pub fn passage_view(&self, run: &RunDir) -> Result<RunData, EvalError> {
        let row_of: HashMap<&str, usize> = self.chunks.iter().enumerate().map(|(i, c)| (c.chunk_id.as_str(), i)).collect();
        let mut passages = Vec::new();
        let mut groups = Vec::new();
        let columns = ["passage_id", "doc_id", "chunk_ids", "node_id", "n_tokens", "duplicate_of", "selected"];
        for batch in batches::<PassageRow>(&run.path(PASSAGES), &columns)? {
            for p in batch? {
                // A passage's chunks are consecutive rows of the chunks.
                let first = p.chunk_ids.first().and_then(|id| row_of.get(id.as_str()).copied());
                let consecutive =
                    |start: usize| p.chunk_ids.iter().enumerate().all(|(k, id)| row_of.get(id.as_str()) == Some(&(start + k)));
                let Some(start) = first.filter(|&start| consecutive(start)) else {
                    return Err(EvalError::Mismatch {
                        path: run.path(PASSAGES),
                        chunks: run.path(CHUNKS),
                        message: format!("passage `{}` does not name consecutive chunks of the run", p.passage_id),
                    });
                };
                groups.push((start, p.chunk_ids.len()));
                passages.push(ChunkInfo {
                    chunk_id: p.passage_id,
                    doc_id: p.doc_id,
                    node_id: p.node_id,
                    n_tokens: p.n_tokens,
                    duplicate: p.duplicate_of.is_some(),
                    selected: p.selected,
                });
            }
        }
        Ok(RunData {
            chunks: passages,
            vectors: self.vectors.group_means(groups.into_iter()),
            tree: self.tree.clone(),
            documents: self.documents.clone(),
            corpus_tokens: self.corpus_tokens,
        })
    }

    pub fn vector(&self, i: usize) -> &[f32] {
        self.vectors.row(i)
    }

    /// Deepest level of the taxonomy (root = 0).
    pub fn max_depth(&self) -> u8 {
        self.tree.nodes().iter().map(|n| n.depth).max().unwrap_or(0)
    }

    /// Each chunk's cluster at `depth`: its leaf's ancestor at that depth, or the leaf itself
    /// when the leaf is shallower (it is its own cluster at every deeper level).
    pub fn clusters_at(&self, depth: u8) -> Vec<u32> {
        let mut memo: HashMap<u32, u32> = HashMap::new();
        let shape = self.tree.shape();
        let ancestor = |leaf: u32| shape.lineage(leaf).get(depth as usize).copied().unwrap_or(leaf);
        self.chunks.iter().map(|c| *memo.entry(c.node_id).or_insert_with(|| ancestor(c.node_id))).collect()
    }

    /// The units as selection sees them, `eligible[i]` saying whether unit `i` may be taken.
    pub fn candidates(&self, eligible: &[bool]) -> Vec<strata_select::Candidate<'_>> {
        let units = self.chunks.iter().enumerate();
        units
            .map(|(i, c)| strata_select::Candidate { leaf: c.node_id, n_tokens: c.n_tokens, eligible: eligible[i], vector: self.vector(i) })
            .collect()
    }

    /// Chunks a selection may take ([`strata_core::eligible`]).
    pub fn eligible(&self, min_tokens: u32) -> Vec<bool> {
        self.chunks.iter().map(|c| strata_core::eligible(c.n_tokens, c.duplicate, min_tokens)).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn node(node_id: u32, parent_id: Option<u32>, depth: u8) -> TaxonomyNode {
        TaxonomyNode { node_id, parent_id, depth, label: format!("n{node_id}"), ..Default::default() }
    }

    /// root 0 -> {1 -> {2, 3}, 4 (a leaf at depth 1)}; chunks given as (doc, leaf, tokens).
    pub(crate) fn toy(chunks: &[(&str, u32, u32)], vectors: &[[f32; 2]]) -> RunData {
        RunData {
            chunks: chunks
                .iter()
                .enumerate()
                .map(|(i, &(doc, leaf, n))| ChunkInfo {
                    chunk_id: format!("c{i}"),
                    doc_id: doc.to_string(),
                    node_id: leaf,
                    n_tokens: n,
                    duplicate: false,
                    selected: false,
                })
                .collect(),
            vectors: Matrix::new(vectors.iter().flatten().copied().collect(), 2),
            tree: TaxonomyTree::new(vec![
                node(0, None, 0),
                node(1, Some(0), 1),
                node(2, Some(1), 2),
                node(3, Some(1), 2),
                node(4, Some(0), 1),
            ])
            .expect("tree"),
            documents: Vec::new(),
            corpus_tokens: chunks.iter().map(|c| c.2 as u64).sum(),
        }
    }

    #[test]
    fn clusters_are_ancestors_and_shallow_leaves_stay_themselves() {
        let data = toy(&[("a", 2, 40), ("a", 3, 40), ("b", 4, 40)], &[[1.0, 0.0]; 3]);
        assert_eq!(data.max_depth(), 2);
        assert_eq!(data.clusters_at(1), vec![1, 1, 4]);
        assert_eq!(data.clusters_at(2), vec![2, 3, 4]);
    }
}
