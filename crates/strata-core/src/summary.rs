//! The stages by name, and what each one reports besides its files: typed summaries that the
//! manifest records under `stages.<name>` (e.g. `stages.select.budget_tokens`). Later stages
//! and the CLI read them as these structs, so a misspelt figure is a compile error and a
//! missing one a parse error, never a silent zero.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The pipeline's stages, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageName {
    Chunk,
    Embed,
    Taxonomy,
    Select,
    Emit,
    Index,
    Cost,
    Report,
}

impl StageName {
    pub const ALL: [StageName; 8] = [
        StageName::Chunk,
        StageName::Embed,
        StageName::Taxonomy,
        StageName::Select,
        StageName::Emit,
        StageName::Index,
        StageName::Cost,
        StageName::Report,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Chunk => "chunk",
            StageName::Embed => "embed",
            StageName::Taxonomy => "taxonomy",
            StageName::Select => "select",
            StageName::Emit => "emit",
            StageName::Index => "index",
            StageName::Cost => "cost",
            StageName::Report => "report",
        }
    }

    /// Whether the stage runs every time, whatever its fingerprint: the report reads
    /// `eval.json` and the manifest's timings, which no fingerprint covers, and takes
    /// milliseconds.
    pub fn always_reruns(self) -> bool {
        self == StageName::Report
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `chunk`: the corpus as the chunker saw it. The corpus totals live here and only here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkSummary {
    pub files: u64,
    pub documents: u64,
    pub documents_without_chunks: u64,
    /// Tokens of every chunk (the embedding model's tokenizer), duplicates included.
    pub corpus_tokens: u64,
    pub chunks_under_min_tokens: u64,
}

/// `embed`: how much was embedded and how much padding the batches carried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedSummary {
    pub distinct_texts: u64,
    pub embedded_texts: u64,
    pub cached_texts: u64,
    pub tokens_computed: u64,
    pub tokens_real: u64,
    pub padding_ratio: f64,
}

/// `taxonomy`: the tree's size, the near-duplicates it marked, and where its labels came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaxonomySummary {
    pub nodes: u64,
    pub leaves: u64,
    pub level1_nodes: u64,
    pub near_duplicates: u64,
    /// Distinct label terms (unigrams and bigrams): what the labels' memory follows.
    pub vocabulary_terms: u64,
    /// Labels below the root taken from a heading that covers the node, chosen among the
    /// node's phrases, or made of keywords (no phrase qualified). These five figures default
    /// when absent, so a manifest written before labels were measured still loads; its
    /// taxonomy stage then reruns (its configuration gained keys) and records them.
    #[serde(default)]
    pub heading_labels: u64,
    #[serde(default)]
    pub phrase_labels: u64,
    #[serde(default)]
    pub keyword_labels: u64,
    /// Distinct candidate phrases embedded to rank the labels.
    #[serde(default)]
    pub phrases_embedded: u64,
    /// The labels' figures (verbatim as the stage chose them; `strata eval` measures them
    /// again from the files).
    #[serde(default)]
    pub labels: crate::labels::LabelQuality,
}

/// `select`: the budget and what it bought.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectSummary {
    /// The token budget the selection obeyed (DESIGN.md: `stages.select.budget_tokens`).
    pub budget_tokens: u64,
    /// Copied from the chunk stage's summary, so the selection's record reads on its own.
    pub corpus_tokens: u64,
    pub selected_tokens: u64,
    pub selected_chunks: u64,
    pub cost_floor_tokens: u64,
    pub eligible_chunks: u64,
    pub leaves: u64,
    pub leaves_covered: u64,
}

/// `emit`: the training sets' sizes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmitSummary {
    pub scpt_samples: u64,
    pub ssft_samples: u64,
    pub scpt_tokens: u64,
    pub ssft_tokens: u64,
}

/// `index`: nothing beyond its rows and files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexSummary {}

/// `cost`: the corpus figures the ledger was computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    pub corpus_tokens: u64,
    pub subset_tokens: u64,
    pub ssft_tokens: u64,
    pub index_bytes: u64,
}

/// `report`: coverage as drawn, and the page's size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub leaves_covered: u64,
    pub leaves: u64,
    pub report_bytes: u64,
}

/// What a stage returns besides its files: one summary per stage.
#[derive(Debug, Clone, PartialEq)]
pub enum StageSummary {
    Chunk(ChunkSummary),
    Embed(EmbedSummary),
    Taxonomy(TaxonomySummary),
    Select(SelectSummary),
    Emit(EmitSummary),
    Index(IndexSummary),
    Cost(CostSummary),
    Report(ReportSummary),
}

impl StageSummary {
    /// The stage this summary belongs to.
    pub fn stage(&self) -> StageName {
        match self {
            StageSummary::Chunk(_) => StageName::Chunk,
            StageSummary::Embed(_) => StageName::Embed,
            StageSummary::Taxonomy(_) => StageName::Taxonomy,
            StageSummary::Select(_) => StageName::Select,
            StageSummary::Emit(_) => StageName::Emit,
            StageSummary::Index(_) => StageName::Index,
            StageSummary::Cost(_) => StageName::Cost,
            StageSummary::Report(_) => StageName::Report,
        }
    }

    /// The figures as a JSON object, for displays that list them (the report's timings).
    pub fn figures(&self) -> serde_json::Map<String, serde_json::Value> {
        let value = match self {
            StageSummary::Chunk(s) => serde_json::to_value(s),
            StageSummary::Embed(s) => serde_json::to_value(s),
            StageSummary::Taxonomy(s) => serde_json::to_value(s),
            StageSummary::Select(s) => serde_json::to_value(s),
            StageSummary::Emit(s) => serde_json::to_value(s),
            StageSummary::Index(s) => serde_json::to_value(s),
            StageSummary::Cost(s) => serde_json::to_value(s),
            StageSummary::Report(s) => serde_json::to_value(s),
        };
        match value {
            Ok(serde_json::Value::Object(map)) => map,
            // Plain structs of numbers always serialise to an object.
            _ => serde_json::Map::new(),
        }
    }
}
