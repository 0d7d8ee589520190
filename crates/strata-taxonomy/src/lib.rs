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
use strata_core::parquet_io::{RowWriter, VectorsInStep};
use strata_core::records::{AssignmentRecord, TaxonomyNode};
use strata_core::rundir::{EMBEDDINGS, TAXONOMY, TAXONOMY_JSON, WORK_ASSIGNMENTS, WORK_CHUNKS};
use strata_core::vectors::dot;
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
        let (chunks, vectors) = read_chunks(ctx)?;
        ctx.progress.start("taxonomy", None);
        let tree = build_tree(&vectors, &self.config, self.seed);
        let layout = Layout::of(&tree);
        let terms = count_terms(ctx, &layout)?;
        let nodes = describe(&tree, &layout, &chunks, &vectors, &terms, &self.config, &self.domain);
        let duplicate_of = mark_duplicates(&chunks.content_hashes, &vectors, &leaf_members(&tree), self.config.near_duplicate_threshold);
        ctx.progress.finish();

        let mut assignments = RowWriter::create(&ctx.output(WORK_ASSIGNMENTS)?, &AssignmentRecord::fields(), &[])?;
        for (i, (chunk_id, &leaf)) in chunks.ids.iter().zip(&layout.leaf_of).enumerate() {
            assignments.push(AssignmentRecord {
                chunk_id: chunk_id.clone(),
                node_id: leaf as u32,
                duplicate_of: duplicate_of[i].map(|d| chunks.ids[d].clone()),
            })?;
        }
        assignments.close()?;
        parquet_io::write_rows(&ctx.output(TAXONOMY)?, &TaxonomyNode::fields(), &nodes, &[])?;
        let nested = serde_json::to_string_pretty(&json!({"domain": self.domain, "root": nest(&nodes, 0)}))?;
        std::fs::write(ctx.output(TAXONOMY_JSON)?, nested + "\n")?;

        let leaves = layout.children.iter().filter(|c| c.is_empty()).count();
        let mut extra = serde_json::Map::new();
        extra.insert("nodes".into(), json!(nodes.len()));
        extra.insert("leaves".into(), json!(leaves));
        extra.insert("level1_nodes".into(), json!(tree.children.len()));
        extra.insert("near_duplicates".into(), json!(duplicate_of.iter().filter(|d| d.is_some()).count()));
        // The labels' memory follows this (unigrams and bigrams), not the number of chunks.
        extra.insert("vocabulary_terms".into(), json!(terms.vocabulary.size()));
        Ok(StageStats { rows_in: chunks.ids.len() as u64, rows_out: nodes.len() as u64, extra })
    }
}

/// What the stage keeps of the chunks, in chunk order: no text, and each chunk's first and
/// last heading as ids of `headings`.
struct Chunks {
    ids: Vec<String>,
    headings: labels::Vocabulary,
    heading_ids: Vec<[Option<u32>; 2]>,
    n_tokens: Vec<u32>,
    content_hashes: Vec<u64>,
}

impl Chunks {
    fn headings(&self, m: usize) -> [Option<&str>; 2] {
        self.heading_ids[m].map(|h| h.map(|id| self.headings.name(id)))
    }
}

#[derive(serde::Deserialize)]
struct ChunkRow {
    chunk_id: String,
    heading_path: Vec<String>,
    n_tokens: u32,
    content_hash: String,
}

/// The chunks (four columns) and their embeddings as a matrix, read a batch at a time in step.
fn read_chunks(ctx: &StageContext) -> Result<(Chunks, Array2<f32>), StageError> {
    let mut vectors = VectorsInStep::open(&ctx.run.path(EMBEDDINGS))?;
    let mut chunks =
        Chunks { ids: Vec::new(), headings: Default::default(), heading_ids: Vec::new(), n_tokens: Vec::new(), content_hashes: Vec::new() };
    let path = ctx.run.path(WORK_CHUNKS);
    for batch in parquet_io::batches::<ChunkRow>(&path, &["chunk_id", "heading_path", "n_tokens", "content_hash"])? {
        let batch = batch?;
        vectors.extend(batch.iter().map(|c| c.chunk_id.as_str()))?;
        for c in batch {
            let hash = u64::from_str_radix(&c.content_hash, 16).map_err(|_| {
                format!("`{}`: content_hash `{}` is not hexadecimal; rerun the chunk stage", path.display(), c.content_hash)
            })?;
            chunks.content_hashes.push(hash);
            let [first, last] = [c.heading_path.first(), c.heading_path.last()].map(|h| h.map(|h| chunks.headings.intern(h.clone())));
            chunks.heading_ids.push([first, last]);
            chunks.n_tokens.push(c.n_tokens);
            chunks.ids.push(c.chunk_id);
        }
    }
    let (values, dim) = vectors.finish()?;
    let matrix = Array2::from_shape_vec((chunks.ids.len(), dim), values)?;
    Ok((chunks, matrix))
}

/// Node ids as the nodes get them (preorder, root 0) and how they relate.
struct Layout {
    /// The ids from the root down to each node.
    lineage: Vec<Vec<usize>>,
    /// Each node's children's ids.
    children: Vec<Vec<usize>>,
    /// Each chunk's leaf id.
    leaf_of: Vec<usize>,
}

impl Layout {
    fn of(tree: &Cluster) -> Self {
        fn walk(c: &Cluster, path: &mut Vec<usize>, layout: &mut Layout) {
            let id = layout.lineage.len();
            if let Some(&parent) = path.last() {
                layout.children[parent].push(id);
            }
            path.push(id);
            layout.lineage.push(path.clone());
            layout.children.push(Vec::new());
            if c.children.is_empty() {
                c.members.iter().for_each(|&m| layout.leaf_of[m] = id);
            }
            c.children.iter().for_each(|child| walk(child, path, layout));
            path.pop();
        }
        let mut layout = Layout { lineage: Vec::new(), children: Vec::new(), leaf_of: vec![0; tree.members.len()] };
        walk(tree, &mut Vec::new(), &mut layout);
        layout
    }
}

/// The chunk texts (read again, one column, a batch at a time) counted into the term counts
/// of every node they belong to.
fn count_terms(ctx: &StageContext, layout: &Layout) -> Result<labels::Corpus, StageError> {
    let mut corpus = labels::Corpus::new(layout.lineage.len());
    let mut row = 0;
    for batch in parquet_io::batches::<ChunkText>(&ctx.run.path(WORK_CHUNKS), &["text"])? {
        let batch = batch?;
        let texts: Vec<&str> = batch.iter().map(|c| c.text.as_str()).collect();
        corpus.add(&texts, |i| layout.lineage[layout.leaf_of[row + i]].as_slice());
        row += batch.len();
    }
    Ok(corpus)
}

#[derive(serde::Deserialize)]
struct ChunkText {
    text: String,
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
fn describe(
    tree: &Cluster,
    layout: &Layout,
    chunks: &Chunks,
    vectors: &Array2<f32>,
    corpus: &labels::Corpus,
    config: &TaxonomyConfig,
    domain: &str,
) -> Vec<TaxonomyNode> {
    let mut nodes = Vec::new();
    let root_keywords = labels::sibling_keywords(&[corpus.class_terms(0)], corpus, config.keywords);
    push_node(
        &mut nodes,
        tree,
        None,
        0,
        domain.to_string(),
        root_keywords.into_iter().next().unwrap_or_default(),
        Vec::new(),
        chunks,
        vectors,
    );
    label_children(&mut nodes, 0, tree, layout, chunks, vectors, corpus, config);
    nodes
}

#[allow(clippy::too_many_arguments)]
fn label_children(
    nodes: &mut Vec<TaxonomyNode>,
    parent_id: u32,
    parent: &Cluster,
    layout: &Layout,
    chunks: &Chunks,
    vectors: &Array2<f32>,
    corpus: &labels::Corpus,
    config: &TaxonomyConfig,
) {
    if parent.children.is_empty() {
        return;
    }
    let classes: Vec<&labels::Terms> = layout.children[parent_id as usize].iter().map(|&id| corpus.class_terms(id)).collect();
    let keywords = labels::sibling_keywords(&classes, corpus, config.keywords);
    let headings: Vec<Option<String>> = parent
        .children
        .iter()
        .map(|c| {
            let headings: Vec<[Option<&str>; 2]> = c.members.iter().map(|&m| chunks.headings(m)).collect();
            labels::dominant_heading(&headings, config.heading_share)
        })
        .collect();
    let names = labels::sibling_labels(&nodes[parent_id as usize].label, &headings, &keywords, &classes, &corpus.vocabulary);
    let parent_path = nodes[parent_id as usize].path.clone();
    let depth = nodes[parent_id as usize].depth + 1;
    for ((child, label), kws) in parent.children.iter().zip(names).zip(keywords) {
        let mut path = parent_path.clone();
        path.push(label.clone());
        let id = push_node(nodes, child, Some(parent_id), depth, label, kws, path, chunks, vectors);
        label_children(nodes, id, child, layout, chunks, vectors, corpus, config);
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
    chunks: &Chunks,
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
        n_tokens: cluster.members.iter().map(|&m| chunks.n_tokens[m] as u64).sum(),
        medoid_chunk_id: medoid(&cluster.members, vectors).map(|m| chunks.ids[m].clone()),
    });
    id
}

/// The member closest (cosine) to the members' mean direction: the medoid, in O(n).
fn medoid(members: &[usize], vectors: &Array2<f32>) -> Option<usize> {
    let mut mean = vec![0f32; vectors.ncols()];
    for &m in members {
        mean.iter_mut().zip(vectors.row(m)).for_each(|(a, b)| *a += b);
    }
    let row = |m: usize| vectors.row(m).to_slice().expect("rows of a standard-layout matrix are contiguous");
    members.iter().map(|&m| (dot(row(m), &mean), m)).max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1))).map(|(_, m)| m)
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
