//! strata-taxonomy: the passages clustered into a labelled tree, the heart of the method.
//!
//! The unit clustered is the passage (the training unit), represented by the mean of its
//! chunks' vectors drawn towards its document's mean (`document_weight`), so a document's
//! passages stay together unless their topics differ: the tree is organised by topic, and
//! the document's own sections (Symptoms, Treatment, ...) are the structure below a leaf.
//! Chunks take their passage's leaf.
//!
//! It owns recursive k-means (linfa-clustering) with k chosen per node, keywords (class-based
//! TF-IDF), labels (a covering heading, else a phrase of the node's text ranked with the run's
//! embedder), medoids, stable node ids and near-duplicate marking. It writes `taxonomy.parquet`,
//! `taxonomy.json`, `work/assignments.parquet` and `work/passage_assignments.parquet`.
//! It does not choose the training subset (strata-select) or render anything.

mod cluster;
mod dedup;
mod fit;
mod headings;
mod keywords;
mod kmeans;
mod labels;
mod merged;
mod naming;
mod parts;
mod passes;
mod phrases;
mod placed;
mod runs;
mod sampled;
mod titles;

pub use cluster::{build_tree, build_tree_on_sample, Cluster};
pub use dedup::{exact_duplicates, mark_duplicates, Duplicates};
pub use fit::FitStage;
pub use keywords::{KeywordsStage, PartPhrasesStage};
pub use parts::PartPlaceStage;

use headings::Headings;
use labels::LabelSource;
use passes::{ChunkLeaves, ChunkTree, ChunkVectors, Sums};
use placed::PlacedLeaves;
use runs::{DuplicateRuns, IdLog};

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_core::labels::LabelQuality;
use strata_core::llm::{JsonModel, LlmTally};
use strata_core::parquet_io::{ParquetIoError, RowWriter};
use strata_core::passages::per_chunk;
use strata_core::records::{AssignmentRecord, PassageAssignment, TaxonomyNode};
use strata_core::rundir::{
    EMBEDDINGS, TAXONOMY, TAXONOMY_JSON, WORK_ASSIGNMENTS, WORK_CHUNKS, WORK_FIT, WORK_KEYWORDS, WORK_PASSAGES, WORK_PASSAGE_ASSIGNMENTS,
};
use strata_core::shard::Parts;
use strata_core::summary::TaxonomySummary;
use strata_core::vectors::unit;
use strata_core::{
    parquet_io, Matrix, PassageIndex, PassagesFile, Shape, Stage, StageContext, StageError, StageName, StageStats, StageSummary,
    TaxonomyTree, TextEmbedder,
};

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
    /// No node smaller than this many passages is made; smaller nodes stay leaves.
    pub min_node_size: usize,
    /// Passages the tree is fitted on, and the most passage vectors the stage holds: beyond
    /// it, the tree is fitted on a seeded sample of this many and every passage is then placed
    /// by descending it, its vectors read a batch at a time.
    pub sample_size: usize,
    /// The largest k whose simplified silhouette is within this of the best k's is chosen
    /// (0: the best k itself).
    pub silhouette_tolerance: f32,
    /// k-means restarts per k (best inertia kept).
    pub n_runs: usize,
    /// k-means iteration cap.
    pub max_iterations: u64,
    /// Cosine at or above which a chunk (or a passage) is a near-duplicate of an earlier one in
    /// its leaf.
    pub near_duplicate_threshold: f32,
    /// Keywords kept per node.
    pub keywords: usize,
    /// A heading names a node when at least this share of the node's chunks sit under it and
    /// this share of the heading's chunks sit in the node.
    pub heading_share: f64,
    /// Phrases per node ranked by embedding (the most frequent distinctive ones).
    pub label_candidates: usize,
    /// Weight of a phrase's closeness to the labels its siblings already have (maximal
    /// marginal relevance; 0: none).
    pub label_diversity: f64,
    /// How far a passage's vector is drawn towards its document's (0: the passage alone; 1:
    /// the passage and the document weigh the same).
    pub document_weight: f32,
    /// A heading found in more than this share of the documents (and in at least 3) names an
    /// aspect (Symptoms, Treatment), not a topic: it is never a label.
    pub generic_heading_share: f64,
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
            label_candidates: 20,
            label_diversity: 0.5,
            document_weight: 1.0,
            generic_heading_share: 0.01,
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
        if !(0.0..=1.0).contains(&self.heading_share) || !(0.0..=1.0).contains(&self.label_diversity) {
            return Err(format!(
                "taxonomy.heading_share = {} and taxonomy.label_diversity = {} must be in [0, 1]",
                self.heading_share, self.label_diversity
            ));
        }
        if !(0.0..=10.0).contains(&self.document_weight) || !(0.0..=1.0).contains(&self.generic_heading_share) {
            return Err(format!(
                "taxonomy.document_weight = {} must be in [0, 10] and taxonomy.generic_heading_share = {} in [0, 1]",
                self.document_weight, self.generic_heading_share
            ));
        }
        if !(0.0..=1.0).contains(&self.near_duplicate_threshold) {
            return Err(format!("taxonomy.near_duplicate_threshold = {} must be in [0, 1]", self.near_duplicate_threshold));
        }
        Ok(())
    }
}

/// Why the taxonomy stage failed.
#[derive(Debug, thiserror::Error)]
pub enum TaxonomyError {
    #[error("invalid taxonomy setting: {0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] strata_core::parquet_io::ParquetIoError),
    #[error("the embeddings do not form a matrix")]
    Matrix(#[from] ndarray::ShapeError),
    #[error(transparent)]
    Tree(#[from] strata_core::TreeError),
    #[error("embedding the candidate label phrases failed")]
    Embed(#[source] strata_core::EmbedFailure),
    #[error("the embedder gave {got} vectors of dimension {dim} for {asked} phrases; the embeddings have dimension {expected}")]
    EmbedShape { asked: usize, got: usize, dim: usize, expected: usize },
    #[error("`{path}` is the fit of {fitted} passages, the run has {passages}; run the fit stage again (`strata fit`)")]
    StaleFit { path: PathBuf, fitted: u64, passages: usize },
    #[error("failed to read `{path}`; run the {stage} stage again (`strata {stage}`)")]
    Read {
        path: PathBuf,
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` changed while the stage read it; run the stage again")]
    Changed { path: PathBuf },
    #[error("failed to write or read a scratch file in the run directory's temporary folder")]
    Scratch(#[source] std::io::Error),
    #[error("a passage was placed in leaf {leaf}, the fitted tree has {leaves} leaves; run the fit stage and the placements again")]
    Placement { leaf: u32, leaves: usize },
    #[error("titling the nodes with the LLM failed")]
    Llm(#[source] strata_core::llm::LlmUnavailable),
}

/// The taxonomy stage.
pub struct TaxonomyStage {
    pub config: TaxonomyConfig,
    /// Label of the root: the domain.
    pub domain: String,
    pub seed: u64,
    /// The run's embedder (the one that made the embeddings), for the candidate label phrases.
    pub embedder: Arc<dyn TextEmbedder>,
    /// The recipe's LLM, when it titles the nodes (`[llm] titles`).
    pub titler: Option<Arc<dyn JsonModel>>,
    /// In a sharded run's reduce, the shards, which may have placed their passages in the
    /// fitted tree and counted their terms (`parts`), then counted their phrases (`keywords`).
    pub parts: Option<Parts>,
}

impl Stage for TaxonomyStage {
    fn name(&self) -> StageName {
        StageName::Taxonomy
    }

    fn reads(&self) -> Vec<&'static str> {
        let mut reads = vec![WORK_CHUNKS, WORK_PASSAGES, EMBEDDINGS, WORK_FIT];
        reads.extend(self.parts.as_ref().map(|_| WORK_KEYWORDS));
        reads
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![TAXONOMY, TAXONOMY_JSON, WORK_ASSIGNMENTS, WORK_PASSAGE_ASSIGNMENTS]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        // `fit` 2: past `sample_size` passages, fitted on a sample and placed by descent (runs
        // made before are redone).
        let mut fingerprint = json!({"config": self.config, "domain": self.domain, "seed": self.seed, "fit": 2});
        if let Some(titler) = &self.titler {
            fingerprint["titles"] = json!({"model": titler.fingerprint(), "prompt": titles::PROMPT_VERSION});
        }
        Ok(fingerprint)
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate().map_err(TaxonomyError::Config)?;
        let files = ChunkVectors::of(ctx.run)?;
        let (fitted, placed) = self.fitted_and_placed(ctx, &files.passages)?;
        let placed_by_shards = placed.is_some();
        ctx.progress.start("taxonomy", None);
        // The chunks' vectors are read in passes, a batch at a time: none holds them all.
        let PassageTree { flat, duplicate_of: passage_duplicate_of, fitted_on_sample } =
            self.cluster_passages(ctx, &files, fitted.as_ref(), placed)?;
        let NodeKeywords { keywords, vocabulary_terms, from_shards } = self.keywords(ctx, &flat, placed_by_shards)?;
        let headings = match &self.parts {
            Some(parts) if placed_by_shards => Headings::of_shards(&parts.dirs, &flat, &self.config)?,
            _ => Headings::counted(&files.chunks, &flat, &self.config)?,
        };
        let leaf_sizes: Vec<(u32, usize)> = flat.shape.leaves().map(|id| (id, flat.sizes[id as usize])).collect();
        let threshold = self.config.near_duplicate_threshold;
        let tree_of_chunks = ChunkTree { lineages: &flat.lineages, leaves: &flat };
        let exact = dedup::exact_duplicates_in(ctx, &files.chunks, files.passages.chunk_rows())?;
        let Sums { sums, duplicate_of } = passes::sums_and_duplicates(ctx, &files, &tree_of_chunks, &leaf_sizes, exact, threshold)?;
        // The medoid is the nearest; the LLM titles a node from the passages of the nearest few.
        let wanted = if self.titler.is_some() { TITLE_EXCERPTS * 4 } else { 1 };
        let nearest = passes::nearest(&files, &tree_of_chunks, &sums, wanted)?;
        // Each node's centroid: its summed vector, of unit length.
        let centroids: Vec<Vec<f32>> = sums.into_iter().map(unit).collect();
        let (shortlist, phrase_parts) = self.shortlist(ctx, &files, &flat, &headings, &keywords, from_shards)?;
        let mut named = naming::name_nodes(&flat, &headings, &centroids, keywords, shortlist, self)?;
        let medoids = nearest.iter().filter_map(|rows| rows.first()).copied().collect();
        let (chunk_ids, tokens) = write_chunk_assignments(ctx, &flat, &duplicate_of, medoids)?;
        let nodes = describe(&flat, &tokens, &nearest, &chunk_ids, &mut named);
        let mut tree = TaxonomyTree::new(nodes)?;
        ctx.progress.finish();
        let mut llm_titles = None;
        if let Some(titler) = &self.titler {
            let excerpts = nearest_passages(ctx, &nearest, &files.passages)?;
            let tally = LlmTally::default();
            let titled =
                titles::title_nodes(titler.as_ref(), &self.domain, &tree, &excerpts, ctx.progress, &tally).map_err(TaxonomyError::Llm)?;
            // A title is not a phrase of the text: not verbatim.
            titled.iter().enumerate().filter(|(_, t)| t.is_some()).for_each(|(id, _)| named.sources[id] = Some(LabelSource::Llm));
            tree = TaxonomyTree::new(titles::apply(tree.nodes().to_vec(), &titled))?;
            llm_titles = Some(tally.finish());
        }

        write_passage_assignments(ctx, flat.passage_leaves(), &passage_duplicate_of)?;
        parquet_io::write_rows(&ctx.output(TAXONOMY)?, &TaxonomyNode::fields(llm_titles.is_some()), tree.nodes(), &[])?;
        let json_path = ctx.output(TAXONOMY_JSON)?;
        let nested = serde_json::to_string_pretty(&json!({"domain": self.domain, "root": nest(&tree, &named, 0)}))
            .map_err(|e| TaxonomyError::Write { path: json_path.clone(), source: e.into() })?;
        std::fs::write(&json_path, nested + "\n").map_err(|source| TaxonomyError::Write { path: json_path.clone(), source })?;

        let summary = TaxonomySummary {
            nodes: tree.nodes().len() as u64,
            leaves: leaf_sizes.len() as u64,
            level1_nodes: tree.children(0).len() as u64,
            near_duplicates: duplicate_of.count() as u64,
            passages: flat.placed.passages(),
            duplicate_passages: passage_duplicate_of.count() as u64,
            generic_headings: headings.generic.len() as u64,
            vocabulary_terms,
            heading_labels: named.count(LabelSource::Heading),
            phrase_labels: named.count(LabelSource::Phrase),
            keyword_labels: named.count(LabelSource::Keywords),
            phrases_embedded: named.phrases_embedded as u64,
            labels: LabelQuality::measure(&tree, |id| named.verbatim(&tree, id)),
            fitted_on_sample,
            placed_parts: self.parts.as_ref().filter(|_| placed_by_shards).map(|parts| parts.dirs.len() as u64),
            phrase_parts,
            llm_titles,
        };
        Ok(StageStats { rows_in: files.passages.chunk_rows(), rows_out: summary.nodes, summary: StageSummary::Taxonomy(summary) })
    }
}

impl TaxonomyStage {
    /// The tree the fit stage fitted on a sample (none: every passage is clustered here) and,
    /// when the shards have placed their passages in it, each passage's leaf.
    fn fitted_and_placed(
        &self,
        ctx: &StageContext,
        passages: &PassagesFile,
    ) -> Result<(Option<Cluster>, Option<PlacedLeaves>), StageError> {
        let fit = fit::Fit::read_of(&ctx.run.path(WORK_FIT), passages.count()? as usize)?;
        let placed = match (&fit.tree, &self.parts) {
            (Some(_), Some(parts)) => parts::placed_leaves(ctx, parts, self.config.document_weight, passages)?,
            _ => None,
        };
        Ok((fit.tree, placed))
    }

    /// Each node's shortlisted label phrases: the shards' counts merged when they counted them
    /// against these keywords (`from_shards`), else counted here; with how many shards' counts
    /// were merged.
    fn shortlist(
        &self,
        ctx: &StageContext,
        files: &ChunkVectors,
        flat: &Flat,
        headings: &Headings,
        keywords: &[Vec<(String, f64)>],
        from_shards: bool,
    ) -> Result<(naming::Shortlist, Option<u64>), StageError> {
        let keep = self.config.label_candidates;
        let merged = match (&self.parts, from_shards) {
            (Some(parts), true) => keywords::merged_shortlist(ctx, parts, flat, keywords, keep)?,
            _ => None,
        };
        let phrase_parts = self.parts.as_ref().filter(|_| merged.is_some()).map(|parts| parts.dirs.len() as u64);
        if let Some(shortlist) = merged {
            return Ok((shortlist, phrase_parts));
        }
        let (seeds, lineage_below_root) = (naming::seeds(keywords), |leaf: u32| &flat.lineages[leaf as usize][1..]);
        let tallies = naming::count_phrases(&files.chunks, &headings.generic, &seeds, flat.chunk_leaves()?, lineage_below_root)?;
        Ok((naming::shortlist_of(flat, &tallies, keywords, keep), phrase_parts))
    }

    /// The nodes' keywords: in a sharded run whose shards placed the passages, as the keywords
    /// stage saved them; else from the term counts, the shards' or counted here.
    fn keywords(&self, ctx: &StageContext, flat: &Flat, placed_by_shards: bool) -> Result<NodeKeywords, StageError> {
        let saved = match &self.parts {
            Some(_) => keywords::Keywords::read(&ctx.run.path(WORK_KEYWORDS))?,
            None => None,
        };
        // The file is of these placements when its tree is the one they make (in `strata run`
        // the keywords stage reruns whenever the shards' placements change).
        let current = |saved: &keywords::Keywords| {
            placed_by_shards && saved.parents == flat.parent_ids() && saved.node_of_leaf == flat.node_of_fitted_leaf()
        };
        match saved {
            Some(saved) if current(&saved) => {
                return Ok(NodeKeywords { keywords: saved.keywords, vocabulary_terms: saved.vocabulary_terms, from_shards: true });
            }
            Some(_) => {
                tracing::info!("the keywords stage's tree is not the one the shards' placements make now: finding the keywords here")
            }
            None => {}
        }
        let n = self.config.keywords;
        let (keywords, vocabulary_terms) = match &self.parts {
            Some(parts) if placed_by_shards => {
                let merged = merged::merged_keywords(&parts.dirs, &flat.shape, &flat.node_of_fitted_leaf(), n)?;
                (merged.keywords, merged.vocabulary_terms)
            }
            _ => {
                let terms = count_terms(ctx, flat)?;
                (naming::keywords(flat, &terms, n), terms.vocabulary.size() as u64)
            }
        };
        Ok(NodeKeywords { keywords, vocabulary_terms, from_shards: false })
    }

    /// The tree over the passages. Up to `sample_size` passages, all are clustered with their
    /// vectors in memory; beyond, the fit stage has fitted the tree on a sample (`fitted`), and
    /// every passage is placed in it as the vectors stream by, or was by the shards (`placed`).
    fn cluster_passages(
        &self,
        ctx: &StageContext,
        files: &ChunkVectors,
        fitted: Option<&Cluster>,
        placed: Option<PlacedLeaves>,
    ) -> Result<PassageTree, TaxonomyError> {
        if let Some(fitted) = fitted {
            return sampled::place(ctx, files, &self.config, fitted, placed);
        }
        // At most `sample_size` passages (else the fit stage fitted a tree): held here.
        let passages = PassageIndex::read(files.passages.path(), files.passages.chunk_rows() as usize)?;
        let (vectors, documents) = passages.read_vectors_and_documents(&files.chunks, &files.embeddings)?;
        let units = topic_vectors(&passages, &vectors, documents, self.config.document_weight)?;
        let tree = build_tree(&units, &self.config, self.seed);
        drop(units);
        let mut leaf = vec![0u32; passages.len()];
        tree.leaves().iter().enumerate().for_each(|(i, l)| l.members.iter().for_each(|&p| leaf[p] = i as u32));
        let duplicates = passage_duplicates(&ctx.run.path(WORK_PASSAGES), &vectors, &leaf, self.config.near_duplicate_threshold)?;
        let duplicate_of = DuplicateRuns::of(ctx, duplicates)?;
        let flat = Flat::of(&tree, PlacedLeaves::of(ctx, &leaf)?, files.passages.clone())?;
        Ok(PassageTree { flat, duplicate_of, fitted_on_sample: None })
    }
}

/// Each node's keywords with their scores, the vocabulary's size, and whether they are the
/// keywords stage's (then the shards may have counted the phrases that hold them).
struct NodeKeywords {
    keywords: Vec<Vec<(String, f64)>>,
    vocabulary_terms: u64,
    from_shards: bool,
}

/// The tree over the passages, the passages' duplicates, and the sample the tree was fitted
/// on, when it was one.
struct PassageTree {
    flat: Flat,
    duplicate_of: DuplicateRuns,
    fitted_on_sample: Option<u64>,
}

#[derive(serde::Deserialize)]
struct ChunkIdAndTokens {
    chunk_id: String,
    n_tokens: u32,
}

/// The pass over the chunks' ids and sizes once the tree is known: writes
/// `work/assignments.parquet` (each chunk's leaf and the chunk it duplicates) and sums each
/// node's tokens. Returns the ids of the `medoids` (the only chunk ids the stage holds) and the
/// token sums.
fn write_chunk_assignments(
    ctx: &StageContext,
    flat: &Flat,
    duplicate_of: &DuplicateRuns,
    medoids: HashSet<usize>,
) -> Result<(HashMap<usize, String>, Vec<u64>), StageError> {
    let mut ids = KeptIds::new(ctx, "chunk row", duplicate_of, medoids)?;
    let mut tokens = vec![0u64; flat.shape.len()];
    let mut assignments = RowWriter::create(&ctx.output(WORK_ASSIGNMENTS)?, &AssignmentRecord::fields(), &[])?;
    let path = ctx.run.path(WORK_CHUNKS);
    let mut leaves = flat.chunk_leaves()?;
    for (row, chunk) in parquet_io::rows::<ChunkIdAndTokens>(&path, &["chunk_id", "n_tokens"])?.enumerate() {
        let ChunkIdAndTokens { chunk_id, n_tokens } = chunk?;
        let leaf = leaves.next().ok_or(ParquetIoError::OutOfStep { path: path.clone() })??;
        flat.lineages[leaf as usize].iter().for_each(|&id| tokens[id] += n_tokens as u64);
        let duplicate_of = ids.see(row, &chunk_id)?;
        assignments.push(AssignmentRecord { chunk_id, node_id: leaf, duplicate_of })?;
    }
    assignments.close()?;
    Ok((ids.kept, tokens))
}

/// `work/passage_assignments.parquet`: each passage's leaf and the passage it duplicates, with
/// the passages' ids read in step.
fn write_passage_assignments(
    ctx: &StageContext,
    mut leaves: impl Iterator<Item = Result<u32, TaxonomyError>>,
    duplicate_of: &DuplicateRuns,
) -> Result<(), StageError> {
    let mut ids = KeptIds::new(ctx, "passage", duplicate_of, HashSet::new())?;
    let path = ctx.run.path(WORK_PASSAGES);
    let mut placed = RowWriter::create(&ctx.output(WORK_PASSAGE_ASSIGNMENTS)?, &PassageAssignment::fields(), &[])?;
    for (p, id) in PassageIndex::ids(&path)?.enumerate() {
        let passage_id = id?;
        let duplicate_of = ids.see(p, &passage_id)?;
        let node_id = leaves.next().ok_or(ParquetIoError::OutOfStep { path: path.clone() })??;
        placed.push(PassageAssignment { passage_id, node_id, duplicate_of })?;
    }
    Ok(placed.close()?)
}

/// Ids seen in row order: those of the rows `wanted` kept, and, when there are duplicates,
/// every id written to a scratch log (`runs::IdLog`), so that a duplicate's target (always an
/// earlier row, `dedup`) is read back when the duplicate comes; the duplicates read in step.
struct KeptIds<'a> {
    /// What a row is, for the error.
    what: &'static str,
    duplicate_of: runs::Cursor<'a>,
    log: Option<IdLog>,
    wanted: HashSet<usize>,
    kept: HashMap<usize, String>,
}

impl<'a> KeptIds<'a> {
    fn new(ctx: &StageContext, what: &'static str, duplicates: &'a DuplicateRuns, wanted: HashSet<usize>) -> Result<Self, TaxonomyError> {
        let log = (duplicates.count() > 0).then(|| IdLog::new(ctx)).transpose()?;
        Ok(Self { what, duplicate_of: duplicates.cursor()?, log, kept: HashMap::with_capacity(wanted.len()), wanted })
    }

    /// Row `row`, of id `id`: keeps the id when wanted; the id of the row it duplicates.
    fn see(&mut self, row: usize, id: &str) -> Result<Option<String>, StageError> {
        if self.wanted.contains(&row) {
            self.kept.insert(row, id.to_string());
        }
        let target = match self.duplicate_of.of(row)? {
            Some(t) if t >= row => return Err(format!("{} {row} duplicates a later one, {t}", self.what).into()),
            Some(t) => Some(self.log.as_ref().ok_or("a duplicate without an id log")?.get(t)?),
            None => None,
        };
        if let Some(log) = &mut self.log {
            log.push(id)?;
        }
        Ok(target)
    }
}

fn matrix(vectors: Matrix) -> Result<Array2<f32>, TaxonomyError> {
    let rows = vectors.rows();
    let (values, dim) = vectors.into_parts();
    Ok(Array2::from_shape_vec((rows, dim), values)?)
}

/// What is clustered: each passage's vector drawn towards its document's (topic first).
fn topic_vectors(passages: &PassageIndex, passage_vectors: &Matrix, documents: Matrix, weight: f32) -> Result<Array2<f32>, TaxonomyError> {
    let blended = if weight > 0.0 { passage_vectors.blend(&documents, &passages.document, weight) } else { passage_vectors.clone() };
    matrix(blended)
}

/// Exact (same text, the hashes read from `passages_path`) and near-duplicate passages (cosine
/// of their own vectors, within a leaf).
fn passage_duplicates(passages_path: &Path, vectors: &Matrix, leaf: &[u32], threshold: f32) -> Result<Duplicates, TaxonomyError> {
    let mut by_leaf: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    leaf.iter().enumerate().for_each(|(p, &l)| by_leaf.entry(l).or_default().push(p));
    let groups: Vec<&[usize]> = by_leaf.values().map(Vec::as_slice).collect();
    let view = ndarray::ArrayView2::from_shape((vectors.rows(), vectors.dim()), vectors.values())?;
    let exact = exact_duplicates(|| parquet_io::content_hashes(passages_path))?;
    Ok(mark_duplicates(exact, view, &groups, threshold))
}

/// The tree's nodes in depth-first preorder, so a node's position is its id, with the tree's
/// shape, each node's size and lineage, and where the passages sit: the one place node ids are
/// given. Nothing here is held per passage or per chunk: each passage's leaf of the tree it was
/// placed in is read back from `placed` (a scratch file) as the passes need it, in step with
/// `passages`; a chunk's leaf is its passage's.
struct Flat {
    shape: Shape,
    /// Per leaf of the tree placed in (by position among its leaves), the node it became here
    /// (none: no passage reached it).
    node_of_leaf: Vec<Option<u32>>,
    placed: PlacedLeaves,
    passages: PassagesFile,
    /// Per node, its chunks (those of its passages).
    sizes: Vec<usize>,
    /// Per node, the ids from the root down to it (what a chunk's texts are counted into).
    lineages: Vec<Vec<usize>>,
    /// The run's documents that have passages.
    documents: u64,
}

impl Flat {
    /// The tree `tree` makes of the passages, passage `p` in leaf `placed[p]` (by position
    /// among `tree.leaves()`): children no passage reaches are left out and siblings are
    /// ordered as `build_tree` orders them (more passages first, then the earlier first
    /// passage). Each chunk takes its passage's leaf. One pass over the passages' sizes.
    fn of(tree: &Cluster, placed: PlacedLeaves, passages: PassagesFile) -> Result<Self, TaxonomyError> {
        let mut reached = vec![Reached::default(); tree.leaves().len()];
        let (mut leaves, mut documents) = (placed.read(), 0);
        for (p, passage) in passages.rows()?.enumerate() {
            let (leaf, passage) = (leaves.next().ok_or(TaxonomyError::Changed { path: passages.path().to_path_buf() })??, passage?);
            let at = reached.get_mut(leaf as usize).ok_or(TaxonomyError::Placement { leaf, leaves: tree.leaves().len() })?;
            at.add(1, p, passage.n_chunks as usize);
            documents = passage.document as u64 + 1;
        }
        if leaves.next().is_some() {
            return Err(TaxonomyError::Changed { path: passages.path().to_path_buf() });
        }
        drop(leaves);
        let root = Reached::of(tree, &reached, &mut 0).unwrap_or_default();
        let (mut parents, mut sizes, mut node_of_leaf) = (Vec::new(), Vec::new(), vec![None; reached.len()]);
        let mut stack: Vec<(&Reached, Option<u32>)> = vec![(&root, None)];
        while let Some((node, parent)) = stack.pop() {
            let id = parents.len() as u32;
            parents.push(parent);
            sizes.push(node.chunks);
            node.leaf.iter().for_each(|&leaf| node_of_leaf[leaf] = Some(id));
            stack.extend(node.children.iter().rev().map(|c| (c, Some(id))));
        }
        let shape = Shape::from_parents(parents)?;
        let lineages = (0..shape.len() as u32).map(|id| shape.lineage(id).into_iter().map(|i| i as usize).collect()).collect();
        Ok(Self { shape, node_of_leaf, placed, passages, sizes, lineages, documents })
    }

    /// Each node's parent (none: the root).
    fn parents(&self) -> Vec<Option<usize>> {
        self.parent_ids().into_iter().map(|p| p.map(|p| p as usize)).collect()
    }

    fn parent_ids(&self) -> Vec<Option<u32>> {
        (0..self.shape.len() as u32).map(|id| self.shape.parent(id)).collect()
    }

    /// Per leaf of the tree placed in, up to the last one a passage reached, the node its
    /// passages make here; none where no passage was placed.
    fn node_of_fitted_leaf(&self) -> Vec<Option<u32>> {
        let reached = self.node_of_leaf.iter().rposition(Option::is_some).map_or(0, |last| last + 1);
        self.node_of_leaf[..reached].to_vec()
    }

    /// Each passage's leaf, in passage order.
    fn passage_leaves(&self) -> impl Iterator<Item = Result<u32, TaxonomyError>> + '_ {
        self.placed.read().map(|leaf| Ok(self.node_of_leaf[leaf? as usize].expect("a passage's leaf is a node")))
    }
}

impl ChunkLeaves for Flat {
    fn chunk_leaves(&self) -> Result<Box<dyn Iterator<Item = Result<u32, TaxonomyError>> + '_>, TaxonomyError> {
        let passages = self.passages.rows()?.zip(self.passage_leaves());
        Ok(Box::new(per_chunk(passages.map(|(passage, leaf)| Ok((leaf?, passage?.n_chunks))))))
    }
}

/// A node of a tree as the passages reach it: how many, the first, their chunks, and the
/// reached children in order; for a leaf, its position among the tree's leaves.
#[derive(Debug, Clone)]
struct Reached {
    passages: usize,
    first: usize,
    chunks: usize,
    leaf: Option<usize>,
    children: Vec<Reached>,
}

impl Default for Reached {
    fn default() -> Self {
        Self { passages: 0, first: usize::MAX, chunks: 0, leaf: None, children: Vec::new() }
    }
}

impl Reached {
    /// Counts in `passages` more passages, the first of them `first`, holding `chunks` chunks.
    fn add(&mut self, passages: usize, first: usize, chunks: usize) {
        (self.passages, self.first, self.chunks) = (self.passages + passages, self.first.min(first), self.chunks + chunks);
    }

    /// `node` as the passages reach it, given what reached each leaf (`leaves`, from
    /// `next_leaf` on in `Cluster::leaves` order): none when no passage does.
    fn of(node: &Cluster, leaves: &[Reached], next_leaf: &mut usize) -> Option<Reached> {
        if node.children.is_empty() {
            let leaf = *next_leaf;
            *next_leaf += 1;
            return (leaves[leaf].passages > 0).then(|| Reached { leaf: Some(leaf), ..leaves[leaf].clone() });
        }
        let mut children: Vec<Reached> = node.children.iter().filter_map(|c| Reached::of(c, leaves, next_leaf)).collect();
        children.sort_by_key(|c| cluster::sibling_order(c.passages, c.first));
        let mut reached = Reached::default();
        children.iter().for_each(|c| reached.add(c.passages, c.first, c.chunks));
        Some(Reached { children, ..reached }).filter(|r| r.passages > 0)
    }
}

/// The chunk texts (read again, one column, a batch at a time) counted into the term counts
/// of every node they belong to: their leaf and its ancestors.
fn count_terms(ctx: &StageContext, flat: &Flat) -> Result<labels::Corpus, TaxonomyError> {
    let mut corpus = labels::Corpus::new(flat.parents());
    add_chunk_texts(&ctx.run.path(WORK_CHUNKS), &mut corpus, flat.chunk_leaves()?)?;
    Ok(corpus.finish())
}

/// The texts of the chunks in `chunks` added to `corpus`, each into its class (`classes`, in
/// row order).
fn add_chunk_texts(
    chunks: &Path,
    corpus: &mut labels::Corpus,
    mut classes: impl Iterator<Item = Result<u32, TaxonomyError>>,
) -> Result<(), TaxonomyError> {
    let mut of_batch = Vec::new();
    for batch in parquet_io::batches::<ChunkText>(chunks, &["text"])? {
        let batch = batch?;
        passes::next_leaves(&mut classes, batch.len(), &mut of_batch, chunks)?;
        let texts: Vec<&str> = batch.iter().map(|c| c.text.as_str()).collect();
        corpus.add(&texts, |i| of_batch[i] as usize);
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct ChunkText {
    text: String,
}

/// Every node with its label (taken from `named`), keywords, sizes (`tokens`) and medoid (the
/// first of its `nearest` members), in id order.
fn describe(
    flat: &Flat,
    tokens: &[u64],
    nearest: &[Vec<usize>],
    chunk_ids: &HashMap<usize, String>,
    named: &mut naming::Named,
) -> Vec<TaxonomyNode> {
    (0..flat.shape.len())
        .map(|id| {
            let lineage = &flat.lineages[id];
            TaxonomyNode {
                node_id: id as u32,
                parent_id: flat.shape.parent(id as u32),
                depth: (lineage.len() - 1) as u8,
                label: named.labels[id].clone(),
                keywords: std::mem::take(&mut named.keywords[id]),
                path: lineage[1..].iter().map(|&a| named.labels[a].clone()).collect(),
                n_chunks: flat.sizes[id] as u32,
                n_tokens: tokens[id],
                medoid_chunk_id: nearest[id].first().map(|m| chunk_ids[m].clone()),
                keyword_label: None,
            }
        })
        .collect()
}

/// Passages an LLM titles a node from.
const TITLE_EXCERPTS: usize = 2;

/// Per node (the root's list empty), the texts of the passages holding its `nearest` chunks
/// (`TITLE_EXCERPTS` at most): what the LLM titles the node from.
fn nearest_passages(ctx: &StageContext, nearest: &[Vec<usize>], passages: &PassagesFile) -> Result<Vec<Vec<String>>, TaxonomyError> {
    let nearest_below_root = || nearest.iter().enumerate().map(|(id, rows)| if id == 0 { &[][..] } else { rows.as_slice() });
    // Each of those chunks' passage, found as the passages stream by.
    let rows: BTreeSet<usize> = nearest_below_root().flatten().copied().collect();
    let (mut passage_of, mut rows) = (HashMap::new(), rows.into_iter().peekable());
    for (p, passage) in passages.rows()?.enumerate() {
        let passage = passage?;
        let end = (passage.first_chunk + passage.n_chunks as u64) as usize;
        while let Some(row) = rows.next_if(|&row| row < end) {
            passage_of.insert(row, p);
        }
    }
    let wanted: Vec<Vec<usize>> = nearest_below_root()
        .map(|rows| {
            let mut seen = Vec::new();
            rows.iter().map(|r| passage_of[r]).for_each(|p| {
                if !seen.contains(&p) && seen.len() < TITLE_EXCERPTS {
                    seen.push(p)
                }
            });
            seen
        })
        .collect();
    let needed: HashSet<usize> = wanted.iter().flatten().copied().collect();
    let mut texts: HashMap<usize, String> = HashMap::new();
    let mut row = 0;
    for batch in parquet_io::batches::<ChunkText>(&ctx.run.path(WORK_PASSAGES), &["text"])? {
        for passage in batch? {
            if needed.contains(&row) {
                texts.insert(row, passage.text);
            }
            row += 1;
        }
    }
    Ok(wanted.iter().map(|ps| ps.iter().filter_map(|p| texts.get(p).cloned()).collect()).collect())
}

/// The tree nested, for people and the report (`taxonomy.json`), with where each label came
/// from (and, for a heading, how well it covers the node).
fn nest(tree: &TaxonomyTree, named: &naming::Named, id: u32) -> Value {
    let n = tree.node(id);
    let children: Vec<Value> = tree.children(id).iter().map(|&c| nest(tree, named, c)).collect();
    let source = match named.sources[id as usize] {
        None => "domain",
        Some(LabelSource::Heading) => "heading",
        Some(LabelSource::Phrase) => "phrase",
        Some(LabelSource::Keywords) => "keywords",
        Some(LabelSource::Llm) => "llm",
    };
    let mut node = json!({
        "node_id": n.node_id,
        "label": n.label,
        "label_source": source,
        "keywords": n.keywords,
        "n_chunks": n.n_chunks,
        "n_tokens": n.n_tokens,
        "medoid_chunk_id": n.medoid_chunk_id,
        "children": children,
    });
    if let Some(keyword_label) = &n.keyword_label {
        node["keyword_label"] = json!(keyword_label);
    }
    if let Some(c) = &named.coverings[id as usize] {
        let share = |x: f64| (x * 1e4).round() / 1e4;
        node["heading_covers"] = json!({"share_of_node": share(c.of_node), "share_of_heading": share(c.in_node)});
    }
    node
}

/// A run directory in a temporary folder, for the stages' unit tests that need a context.
#[cfg(test)]
pub(crate) struct TestRun {
    pub dir: tempfile::TempDir,
    run: strata_core::RunDir,
    manifest: strata_core::manifest::Manifest,
}

#[cfg(test)]
impl TestRun {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let run = strata_core::RunDir::new(dir.path());
        Self { dir, run, manifest: strata_core::manifest::Manifest::new(serde_json::Value::Null) }
    }

    /// A stage's context whose temporary folder is the run directory.
    pub fn ctx(&self) -> StageContext<'_> {
        StageContext::new(&self.run, self.dir.path().to_path_buf(), &strata_core::NoProgress, &self.manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_keeps_the_nodes_passages_reach_the_largest_first() {
        // Root → a (leaves 0 and 1), b (leaf 2), c (leaf 3).
        let leaf = || Cluster { members: Vec::new(), children: Vec::new(), centroid: Vec::new() };
        let node = |children: Vec<Cluster>| Cluster { members: Vec::new(), children, centroid: Vec::new() };
        let tree = node(vec![node(vec![leaf(), leaf()]), leaf(), leaf()]);
        // Passages 0 and 2 in b, 1 (two chunks) and 3 in a's second leaf; a's first leaf and c
        // are reached by none, so they are left out.
        let test_run = TestRun::new();
        let dir = &test_run.dir;
        let path = dir.path().join("passages.parquet");
        let passage = |p: u64, first_chunk: u64, n_chunks: u32| strata_core::records::PassageRecord {
            passage_id: format!("d{p}#p0"),
            doc_id: format!("d{p}"),
            first_chunk,
            n_chunks,
            text: String::new(),
            n_tokens: 0,
            content_hash: strata_core::hash::text_hash(&p.to_string()),
        };
        let rows = [passage(0, 0, 1), passage(1, 1, 2), passage(2, 3, 1), passage(3, 4, 1)];
        parquet_io::write_rows(&path, &strata_core::records::PassageRecord::fields(), &rows, &[]).expect("write");
        let ctx = test_run.ctx();
        let placed = PlacedLeaves::of(&ctx, &[2, 1, 2, 1]).expect("placed");
        let flat = Flat::of(&tree, placed, PassagesFile::new(&path, 5)).expect("flat");
        // a and b both hold two passages; b's first comes earlier, so b is the first child.
        assert_eq!(flat.parents(), [None, Some(0), Some(0), Some(2)]);
        assert_eq!(flat.sizes, [5, 2, 3, 3]);
        assert_eq!(flat.passage_leaves().collect::<Result<Vec<_>, _>>().expect("leaves"), [1, 3, 1, 3]);
        assert_eq!(flat.chunk_leaves().expect("leaves").collect::<Result<Vec<_>, _>>().expect("leaves"), [1, 3, 3, 1, 3]);
        assert_eq!(flat.node_of_fitted_leaf(), [None, Some(3), Some(1)]);
        assert_eq!(flat.documents, 4);
    }
}
