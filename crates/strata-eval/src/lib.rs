//! strata-eval: evidence, on the user's own corpus, that a run's taxonomy is sensible and its
//! subset spends its tokens better than a naive sample of the same size (`eval.json`).
//!
//! It owns these measurements and their table: agreement between each taxonomy level and
//! human labels kept as document metadata (NMI, ARI, purity; contingency tables in polars),
//! the node labels read against their nodes' text (verbatim, redundant, alike siblings),
//! retrieval quality from ranked hits (recall@k, MRR; BM25, brute-force vector search, and the
//! two fused by reciprocal rank), and
//! the subset against baselines at several budgets (uniform random and first-chunk-per-document
//! selections, facility location, question coverage), and, optionally, the agreement of the
//! run's taxonomy and vectors with another run over the same chunks. It reads a finished run
//! directory and writes only `eval.json` ([`evaluate`], [`write_report`]). It is not a stage:
//! it reruns selection at other budgets (strata-select) and searches the run's index
//! (strata-index); the CLI hands it the run's embedder for the questions.

mod compare;
mod coverage;
mod data;
mod evaluate;
mod label_quality;
mod labels;
mod retrieval;
mod table;
mod topics;

pub use compare::{compare_runs, CosineSummary, RunComparison};
pub use coverage::{
    compare, first_passage_selection, random_selection, subset_metrics, CoverageRow, Questions, StrataSelection, SubsetMetrics,
};
pub use data::{ChunkInfo, RunData};
pub use evaluate::{evaluate, write_report, EmbedTexts, EvalOptions, LATENCY_QUESTIONS, TOP_K};
pub use label_quality::label_quality;
pub use labels::{agreement, default_label_fields, label_agreement, Agreement};
pub use retrieval::{quantile, sample, score_rankings, RetrievalScores};
pub use strata_core::questions::{read_questions, Question};
pub use table::render_table;
pub use topics::{topic_first, TopicFirst};

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Parquet(#[from] strata_core::parquet_io::ParquetIoError),
    #[error("failed to read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Questions(#[from] strata_core::questions::QuestionsError),
    #[error("`{path}` does not match the chunks of `{chunks}`: {message}; rerun the pipeline")]
    Mismatch { path: PathBuf, chunks: PathBuf, message: String },
    #[error("no document of `{path}` has a text field `{field}` in its metadata (fields: {available})")]
    NoSuchLabel { path: PathBuf, field: String, available: String },
    #[error("`{path}` is not a valid taxonomy; rerun the taxonomy stage")]
    Tree {
        path: PathBuf,
        #[source]
        source: strata_core::TreeError,
    },
    #[error("`{path}` is missing or has no record of the chunk stage: is this a finished run directory?")]
    NoManifest { path: PathBuf },
    #[error(transparent)]
    Manifest(#[from] strata_core::manifest::ManifestError),
    #[error("embedding the questions failed")]
    Embed(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("searching the run's index failed")]
    Search(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("computing label agreement failed")]
    Polars(#[from] polars::error::PolarsError),
}

/// What `strata eval` measured; serialised as `eval.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Each method at each budget (fraction of corpus tokens).
    pub coverage: Vec<CoverageRow>,
    /// Per label field, agreement with the taxonomy at each depth (1 = below the root).
    pub labels: BTreeMap<String, Vec<Agreement>>,
    /// The node labels themselves: verbatim phrases, repeats of an ancestor, alike siblings.
    pub label_quality: strata_core::labels::LabelQuality,
    /// Whether the tree is organised by topic (documents whole under one level-1 node, level 1
    /// unlike the section headings).
    pub topic_first: TopicFirst,
    /// Scores and latency of every search mode (`bm25`, `dense`, `hybrid`), when a
    /// questions file was given.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub retrieval: BTreeMap<String, RetrievalScores>,
    /// This run against another over the same chunks (`--compare`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<RunComparison>,
    /// How the figures were obtained: question sample, seeds, thresholds, normalisations.
    pub settings: serde_json::Value,
}
