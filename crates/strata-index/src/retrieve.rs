//! The three ways to search a run: `bm25` (tantivy), `dense` (exact search over the chunk
//! vectors) and `hybrid` (the two fused by reciprocal rank, k = 60), each optionally within a
//! taxonomy subtree. The caller embeds the query with the run's own embedder. (Routing a
//! query to its nearest leaves by centroid first was measured and dropped: on MedQuAD it
//! lost a fifth of MRR; BENCHMARKS.md.)

use crate::dense::DenseIndex;
use crate::{reciprocal_rank_fusion, Hit, IndexError, Searcher, RRF_K};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::Path;
use strata_core::records::TaxonomyNode;
use strata_core::rundir::{DENSE_DIR, TAXONOMY};
use strata_core::{parquet_io, TaxonomyTree};
use tantivy::schema::Facet;

/// Hits each ranking contributes to a fusion.
pub const FUSION_DEPTH: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bm25,
    Dense,
    Hybrid,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Bm25, Mode::Dense, Mode::Hybrid];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bm25 => "bm25",
            Mode::Dense => "dense",
            Mode::Hybrid => "hybrid",
        }
    }

    /// Whether the query must be embedded.
    pub fn needs_vector(self) -> bool {
        self != Mode::Bm25
    }
}

impl std::str::FromStr for Mode {
    type Err = IndexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| IndexError::Mode(s.to_string()))
    }
}

/// A run opened for search: the tantivy index, the dense files and the taxonomy.
pub struct Retriever {
    pub lexical: Searcher,
    pub dense: DenseIndex,
    tree: TaxonomyTree,
}

impl Retriever {
    pub fn open(run_dir: &Path) -> Result<Self, IndexError> {
        let taxonomy = run_dir.join(TAXONOMY);
        let nodes: Vec<TaxonomyNode> =
            parquet_io::read_rows(&taxonomy).map_err(|e| IndexError::Taxonomy { path: taxonomy.clone(), message: e.to_string() })?;
        let tree = TaxonomyTree::new(nodes).map_err(|e| IndexError::Taxonomy { path: taxonomy, message: e.to_string() })?;
        Ok(Self { lexical: Searcher::open(run_dir)?, dense: DenseIndex::open(&run_dir.join(DENSE_DIR))?, tree })
    }

    /// The node ids of the subtree `under` (a taxonomy path such as "/Cardiology/Heart
    /// failure"); the whole tree when `under` is absent or "/".
    pub fn subtree(&self, under: Option<&str>) -> Result<Range<u32>, IndexError> {
        let parts: Vec<&str> =
            under.map(|u| u.trim().trim_matches('/')).filter(|u| !u.is_empty()).map(|u| u.split('/').collect()).unwrap_or_default();
        if parts.is_empty() {
            return Ok(self.tree.subtree(0));
        }
        self.tree
            .nodes()
            .iter()
            .find(|n| n.path.len() == parts.len() && n.path.iter().zip(&parts).all(|(a, b)| a == b))
            .map(|n| self.tree.subtree(n.node_id))
            .ok_or_else(|| IndexError::UnknownSubtree(under.unwrap_or_default().to_string()))
    }

    /// The `k` best chunks for `query` by `mode`, within `under`; `vector` is the query
    /// embedded by the run's model (needed by every mode but `bm25`).
    pub fn search(&self, query: &str, vector: Option<&[f32]>, mode: Mode, under: Option<&str>, k: usize) -> Result<Vec<Hit>, IndexError> {
        let nodes = self.subtree(under)?;
        let vector = match (mode.needs_vector(), vector) {
            (false, _) => &[][..],
            (true, Some(v)) => v,
            (true, None) => return Err(IndexError::NoVector(mode.as_str())),
        };
        match mode {
            Mode::Bm25 => self.lexical.search_in(query, self.facet(nodes.start).as_ref(), k),
            Mode::Dense => {
                let rows = self.dense.search(vector, &|leaf| nodes.contains(&leaf), k)?;
                let scored: Vec<(&str, f32)> = rows.into_iter().map(|(row, score)| (self.dense.chunk_id(row), score)).collect();
                self.hits(scored, &[])
            }
            Mode::Hybrid => self.fused(query, vector, nodes, k),
        }
    }

    /// The taxonomy facet of `node` (none for the root: everything).
    fn facet(&self, node: u32) -> Option<Facet> {
        // From the labels themselves, so a label holding a "/" stays one level.
        Some(node).filter(|&n| n != 0).map(|n| Facet::from_path(&self.tree.node(n).path))
    }

    /// The chunks `scored` as hits with those scores, in that order: their stored fields from
    /// `known` (hits already fetched) or from the index, all fetched in one search.
    fn hits(&self, scored: Vec<(&str, f32)>, known: &[Hit]) -> Result<Vec<Hit>, IndexError> {
        let missing: Vec<&str> = scored.iter().map(|&(id, _)| id).filter(|id| !known.iter().any(|h| h.chunk_id == *id)).collect();
        let fetched = self.lexical.get_many(&missing)?;
        let stored = |id: &str| known.iter().find(|h| h.chunk_id == id).or_else(|| fetched.get(id));
        Ok(scored.into_iter().filter_map(|(id, score)| stored(id).map(|h| Hit { score, ..h.clone() })).collect())
    }

    /// BM25 and dense within the subtree `nodes`, fused by reciprocal rank.
    fn fused(&self, query: &str, vector: &[f32], nodes: Range<u32>, k: usize) -> Result<Vec<Hit>, IndexError> {
        let lexical = self.lexical.search_in(query, self.facet(nodes.start).as_ref(), FUSION_DEPTH)?;
        let dense = self.dense.search(vector, &|leaf| nodes.contains(&leaf), FUSION_DEPTH)?;
        let lexical_ids: Vec<&str> = lexical.iter().map(|h| h.chunk_id.as_str()).collect();
        let dense_ids: Vec<&str> = dense.iter().map(|&(row, _)| self.dense.chunk_id(row)).collect();
        let fused = reciprocal_rank_fusion(&[lexical_ids, dense_ids], RRF_K);
        self.hits(fused.into_iter().take(k).map(|(id, score)| (id, score as f32)).collect(), &lexical)
    }
}
