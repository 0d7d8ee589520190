//! strata-taxonomy: the chunk vectors clustered into a labelled tree, the heart of the method.
//!
//! It owns recursive k-means (linfa-clustering) with k chosen per node, labels (class-based
//! TF-IDF keywords or the dominant heading), medoids, stable node ids and near-duplicate
//! marking. It writes `taxonomy.parquet`, `taxonomy.json` and `work/assignments.parquet`.
//! It does not choose the training subset (strata-select) or render anything.

mod cluster;
mod dedup;
mod labels;

pub use cluster::{build_tree, Cluster};
pub use dedup::mark_duplicates;

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_core::records::{AssignmentRecord, ChunkRecord, EmbeddingRecord, TaxonomyNode};
use strata_core::rundir::{EMBEDDINGS, TAXONOMY, TAXONOMY_JSON, WORK_ASSIGNMENTS, WORK_CHUNKS};
use strata_core::{parquet_io, Stage, StageContext, StageError, StageStats};

/// How the tree is grown and labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaxonomyConfig {
    /// Levels below the root.
    pub depth: usize,
    /// Fewest children a split may make.
    pub k_min: usize,
    /// Most children a split may make (fan-out).
    pub k_max: usize,
    /// No node smaller than this many chunks is made; smaller nodes stay leaves.
    pub min_node_size: usize,
    /// k-means is fitted on at most this many vectors of a node; the rest are assigned.
    pub sample_size: usize,
    /// The largest k whose simplified silhouette is within this of the best k's is chosen
    /// (0: the best k itself).
    pub silhouette_tolerance: f32,
    /// k-means restarts per k (best inertia kept).
    pub n_runs: usize,
    /// k-means iteration cap.
    pub max_iterations: u64,
    /// Cosine at or above which a chunk is a near-duplicate of an earlier one in its leaf.
    pub near_duplicate_threshold: f32,
    /// Keywords kept per node.
    pub keywords: usize,
    /// Share of a node's chunks that must sit under one heading for it to be the label.
    pub heading_share: f64,
}

impl Default for TaxonomyConfig {
    fn default() -> Self {
        Self {
            depth: 3,
            k_min: 2,
            k_max: 8,
            min_node_size: 4,
            sample_size: 50_000,
            silhouette_tolerance: 0.02,
            n_runs: 3,
            max_iterations: 100,
            near_duplicate_threshold: 0.95,
            keywords: 8,
            heading_share: 0.5,
        }
    }
}

impl TaxonomyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.depth == 0 || self.depth > 8 {
            return Err(format!("taxonomy.depth = {} must be between 1 and 8", self.depth));
        }
        if self.k_min < 2 || self.k_max < self.k_min {
            return Err(format!("taxonomy fan-out must satisfy 2 <= k_min <= k_max (got {}..{})", self.k_min, self.k_max));
        }
        if self.min_node_size == 0 {
            return Err("taxonomy.min_node_size must be at least 1".into());
        }
        if !(0.0..=2.0).contains(&self.silhouette_tolerance) {
            return Err(format!("taxonomy.silhouette_tolerance = {} must be in [0, 2]", self.silhouette_tolerance));
        }
        if !(0.0..=1.0).contains(&self.near_duplicate_threshold) {
            return Err(format!("taxonomy.near_duplicate_threshold = {} must be in [0, 1]", self.near_duplicate_threshold));
        }
        Ok(())
    }
}

/// The taxonomy stage.
pub struct TaxonomyStage {
    pub config: TaxonomyConfig,
    /// Label of the root: the domain.
    pub domain: String,
    pub seed: u64,
}

impl Stage for TaxonomyStage {
    fn name(&self) -> &'static str {
        "taxonomy"
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, EMBEDDINGS]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![TAXONOMY, TAXONOMY_JSON, WORK_ASSIGNMENTS]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(json!({"config": self.config, "domain": self.domain, "seed": self.seed}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate()?;
        // Texts are read a batch at a time into the labels' term counts, never all at once.
        let mut chunks: Vec<ChunkMeta> = Vec::new();
        let mut terms = labels::Corpus::default();
        parquet_io::for_each_rows(&ctx.run.path(WORK_CHUNKS), |batch: Vec<ChunkRecord>| {
            terms.add(&batch.iter().map(|c| c.text.as_str()).collect::<Vec<_>>());
            chunks.extend(batch.into_iter().map(ChunkMeta::from));
            Ok(())
        })?;
        let vectors = load_vectors(ctx, &chunks)?;
        ctx.progress.start("taxonomy", None);
        let tree = build_tree(&vectors, &self.config, self.seed);
        let nodes = describe(&tree, &chunks, &vectors, &terms, &self.config, &self.domain);
        let hashes: Vec<&str> = chunks.iter().map(|c| c.content_hash.as_str()).collect();
        let duplicate_of = mark_duplicates(&hashes, &vectors, &leaf_members(&tree), self.config.near_duplicate_threshold);
        ctx.progress.finish();

        let mut leaf_of = vec![0u32; chunks.len()];
        for (node, cluster) in nodes.iter().zip(preorder(&tree)) {
            if cluster.children.is_empty() {
                cluster.members.iter().for_each(|&m| leaf_of[m] = node.node_id);
            }
        }
        let assignments: Vec<AssignmentRecord> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| AssignmentRecord {
                chunk_id: c.chunk_id.clone(),
                node_id: leaf_of[i],
                duplicate_of: duplicate_of[i].map(|d| chunks[d].chunk_id.clone()),
            })
            .collect();
        parquet_io::write_rows(&ctx.output(TAXONOMY)?, &TaxonomyNode::fields(), &nodes, &[])?;
        parquet_io::write_rows(&ctx.output(WORK_ASSIGNMENTS)?, &AssignmentRecord::fields(), &assignments, &[])?;
        let nested = serde_json::to_string_pretty(&json!({"domain": self.domain, "root": nest(&nodes, 0)}))?;
        std::fs::write(ctx.output(TAXONOMY_JSON)?, nested + "\n")?;

        let leaves = preorder(&tree).iter().filter(|c| c.children.is_empty()).count();
        let mut extra = serde_json::Map::new();
        extra.insert("nodes".into(), json!(nodes.len()));
        extra.insert("leaves".into(), json!(leaves));
        extra.insert("level1_nodes".into(), json!(tree.children.len()));
        extra.insert("near_duplicates".into(), json!(duplicate_of.iter().filter(|d| d.is_some()).count()));
        Ok(StageStats { rows_in: chunks.len() as u64, rows_out: nodes.len() as u64, extra })
    }
}

/// What the stage keeps of a chunk (its text only passes through the labels' term counts).
struct ChunkMeta {
    chunk_id: String,
    heading_path: Vec<String>,
    n_tokens: u32,
    content_hash: String,
}

impl From<ChunkRecord> for ChunkMeta {
    fn from(c: ChunkRecord) -> Self {
        Self { chunk_id: c.chunk_id, heading_path: c.heading_path, n_tokens: c.n_tokens, content_hash: c.content_hash }
    }
}

/// The embeddings as a matrix in chunk order (rows checked against the chunk ids).
fn load_vectors(ctx: &StageContext, chunks: &[ChunkMeta]) -> Result<Array2<f32>, StageError> {
    let path = ctx.run.path(EMBEDDINGS);
    let mismatch = || -> StageError { format!("`{}` does not match the chunks; rerun the embed stage", path.display()).into() };
    // Streamed batch by batch into one matrix buffer, sized once the dimension is known.
    let (mut flat, mut rows, mut dim) = (Vec::new(), 0usize, 0usize);
    let mut matches = true;
    parquet_io::for_each_rows(&path, |batch: Vec<EmbeddingRecord>| {
        for e in batch {
            if rows == 0 {
                dim = e.embedding.len();
                flat.reserve_exact(chunks.len() * dim);
            }
            matches &= chunks.get(rows).is_some_and(|c| c.chunk_id == e.chunk_id) && e.embedding.len() == dim;
            flat.extend_from_slice(&e.embedding);
            rows += 1;
        }
        Ok(())
    })?;
    if !matches || rows != chunks.len() {
        return Err(mismatch());
    }
    Ok(Array2::from_shape_vec((chunks.len(), dim), flat)?)
}

/// Nodes in depth-first preorder (the order of node ids).
fn preorder(tree: &Cluster) -> Vec<&Cluster> {
    let mut out = vec![tree];
    for c in &tree.children {
        out.extend(preorder(c));
    }
    out
}

fn leaf_members(tree: &Cluster) -> Vec<&[usize]> {
    preorder(tree).into_iter().filter(|c| c.children.is_empty()).map(|c| c.members.as_slice()).collect()
}

/// Labels, keywords, sizes and medoids for every node, ids in preorder (root = 0).
fn describe(tree: &Cluster, chunks: &[ChunkMeta], vectors: &Array2<f32>, corpus: &labels::Corpus, config: &TaxonomyConfig, domain: &str) -> Vec<TaxonomyNode> {
    let mut nodes = Vec::new();
    let root_keywords = labels::sibling_keywords(&[corpus.class_terms(&tree.members)], corpus, config.keywords);
    push_node(&mut nodes, tree, None, 0, domain.to_string(), root_keywords.into_iter().next().unwrap_or_default(), Vec::new(), chunks, vectors);
    label_children(&mut nodes, 0, tree, chunks, vectors, corpus, config);
    nodes
}

#[allow(clippy::too_many_arguments)]
fn label_children(
    nodes: &mut Vec<TaxonomyNode>,
    parent_id: u32,
    parent: &Cluster,
    chunks: &[ChunkMeta],
    vectors: &Array2<f32>,
    corpus: &labels::Corpus,
    config: &TaxonomyConfig,
) {
    if parent.children.is_empty() {
        return;
    }
    let classes: Vec<labels::Terms> = parent.children.iter().map(|c| corpus.class_terms(&c.members)).collect();
    let keywords = labels::sibling_keywords(&classes, corpus, config.keywords);
    let headings: Vec<Option<String>> = parent
        .children
        .iter()
        .map(|c| {
            let paths: Vec<&[String]> = c.members.iter().map(|&m| chunks[m].heading_path.as_slice()).collect();
            labels::dominant_heading(&paths, config.heading_share)
        })
        .collect();
    let names = labels::sibling_labels(&nodes[parent_id as usize].label, &headings, &keywords, &classes, &corpus.vocabulary);
    let parent_path = nodes[parent_id as usize].path.clone();
    let depth = nodes[parent_id as usize].depth + 1;
    for ((child, label), kws) in parent.children.iter().zip(names).zip(keywords) {
        let mut path = parent_path.clone();
        path.push(label.clone());
        let id = push_node(nodes, child, Some(parent_id), depth, label, kws, path, chunks, vectors);
        label_children(nodes, id, child, chunks, vectors, corpus, config);
    }
}

#[allow(clippy::too_many_arguments)]
fn push_node(
    nodes: &mut Vec<TaxonomyNode>,
    cluster: &Cluster,
    parent_id: Option<u32>,
    depth: u8,
    label: String,
    keywords: Vec<String>,
    path: Vec<String>,
    chunks: &[ChunkMeta],
    vectors: &Array2<f32>,
) -> u32 {
    let id = nodes.len() as u32;
    nodes.push(TaxonomyNode {
        node_id: id,
        parent_id,
        depth,
        label,
        keywords,
        path,
        n_chunks: cluster.members.len() as u32,
        n_tokens: cluster.members.iter().map(|&m| chunks[m].n_tokens as u64).sum(),
        medoid_chunk_id: medoid(&cluster.members, vectors).map(|m| chunks[m].chunk_id.clone()),
    });
    id
}

/// The member closest (cosine) to the members' mean direction: the medoid, in O(n).
fn medoid(members: &[usize], vectors: &Array2<f32>) -> Option<usize> {
    let dim = vectors.ncols();
    let mut mean = vec![0f32; dim];
    for &m in members {
        mean.iter_mut().zip(vectors.row(m)).for_each(|(a, b)| *a += b);
    }
    members.iter().copied().max_by(|&a, &b| {
        let da: f32 = vectors.row(a).iter().zip(&mean).map(|(x, y)| x * y).sum();
        let db: f32 = vectors.row(b).iter().zip(&mean).map(|(x, y)| x * y).sum();
        da.total_cmp(&db).then(b.cmp(&a))
    })
}

/// The flat nodes as a nested tree for people and the report.
fn nest(nodes: &[TaxonomyNode], id: u32) -> Value {
    let n = &nodes[id as usize];
    let children: Vec<Value> = nodes.iter().filter(|c| c.parent_id == Some(id)).map(|c| nest(nodes, c.node_id)).collect();
    json!({
        "node_id": n.node_id,
        "label": n.label,
        "keywords": n.keywords,
        "n_chunks": n.n_chunks,
        "n_tokens": n.n_tokens,
        "medoid_chunk_id": n.medoid_chunk_id,
        "children": children,
    })
}
