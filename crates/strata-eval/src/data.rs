//! What evaluation reads from a finished run: chunks (in corpus order), their vectors, the
//! taxonomy and the documents with their metadata.

use crate::EvalError;
use std::collections::{HashMap, HashSet};
use strata_core::parquet_io::{batches, read_rows, VectorsInStep};
use strata_core::records::{DocumentRecord, TaxonomyNode};
use strata_core::rundir::{CHUNKS, EMBEDDINGS, TAXONOMY, WORK_DOCUMENTS};
use strata_core::RunDir;

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

/// A run directory loaded for evaluation.
#[derive(Debug, Clone)]
pub struct RunData {
    /// In corpus order (the order of `chunks.parquet`: documents as ingested, then ordinal).
    pub chunks: Vec<ChunkInfo>,
    /// Row `i` is the L2-normalised vector of `chunks[i]`, `dim` floats.
    pub vectors: Vec<f32>,
    pub dim: usize,
    pub nodes: Vec<TaxonomyNode>,
    pub documents: Vec<DocumentRecord>,
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
        let (vectors, dim) = vectors.finish()?;
        let nodes: Vec<TaxonomyNode> = read_rows(&run.path(TAXONOMY))?;
        let documents: Vec<DocumentRecord> = read_rows(&run.path(WORK_DOCUMENTS))?;
        let node_ids: HashSet<u32> = nodes.iter().map(|n| n.node_id).collect();
        if let Some(c) = chunks.iter().find(|c| !node_ids.contains(&c.node_id)) {
            return Err(EvalError::Mismatch {
                path: run.path(TAXONOMY),
                chunks: run.path(CHUNKS),
                message: format!("chunk `{}` sits in node {}, which the taxonomy lacks", c.chunk_id, c.node_id),
            });
        }
        Ok(Self { chunks, vectors, dim, nodes, documents })
    }

    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Deepest level of the taxonomy (root = 0).
    pub fn max_depth(&self) -> u8 {
        self.nodes.iter().map(|n| n.depth).max().unwrap_or(0)
    }

    /// Each chunk's cluster at `depth`: its leaf's ancestor at that depth, or the leaf itself
    /// when the leaf is shallower (it is its own cluster at every deeper level).
    pub fn clusters_at(&self, depth: u8) -> Vec<u32> {
        let by_id: HashMap<u32, &TaxonomyNode> = self.nodes.iter().map(|n| (n.node_id, n)).collect();
        let mut memo: HashMap<u32, u32> = HashMap::new();
        self.chunks
            .iter()
            .map(|c| {
                *memo.entry(c.node_id).or_insert_with(|| {
                    let mut id = c.node_id;
                    while let Some(n) = by_id.get(&id).filter(|n| n.depth > depth) {
                        match n.parent_id {
                            Some(p) => id = p,
                            None => break,
                        }
                    }
                    id
                })
            })
            .collect()
    }

    /// Corpus tokens: the sum over every chunk, as selection counts them.
    pub fn corpus_tokens(&self) -> u64 {
        self.chunks.iter().map(|c| c.n_tokens as u64).sum()
    }

    /// Chunks a selection may take: not near-duplicates and at least `min_tokens` long.
    pub fn eligible(&self, min_tokens: u32) -> Vec<bool> {
        self.chunks.iter().map(|c| !c.duplicate && c.n_tokens >= min_tokens).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn node(node_id: u32, parent_id: Option<u32>, depth: u8) -> TaxonomyNode {
        TaxonomyNode {
            node_id,
            parent_id,
            depth,
            label: format!("n{node_id}"),
            keywords: Vec::new(),
            path: Vec::new(),
            n_chunks: 0,
            n_tokens: 0,
            medoid_chunk_id: None,
        }
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
            vectors: vectors.iter().flatten().copied().collect(),
            dim: 2,
            nodes: vec![node(0, None, 0), node(1, Some(0), 1), node(2, Some(1), 2), node(3, Some(1), 2), node(4, Some(0), 1)],
            documents: Vec::new(),
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
