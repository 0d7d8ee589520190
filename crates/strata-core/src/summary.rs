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
    Fit,
    Keywords,
    Taxonomy,
    Subtrees,
    Select,
    Emit,
    Index,
    Cost,
    Report,
}

impl StageName {
    pub const ALL: [StageName; 11] = [
        StageName::Chunk,
        StageName::Embed,
        StageName::Fit,
        StageName::Keywords,
        StageName::Taxonomy,
        StageName::Subtrees,
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
            StageName::Fit => "fit",
            StageName::Keywords => "keywords",
            StageName::Taxonomy => "taxonomy",
            StageName::Subtrees => "subtrees",
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
    pub embedding_tokens: u64,
    /// Tokens of every passage in the target tokenizer, duplicates included: what budgets,
    /// sample sizes and the cost ledger count.
    pub corpus_tokens: u64,
    pub chunks_under_min_tokens: u64,
    pub passages: u64,
    /// The tokenizer `corpus_tokens` and every training count use.
    pub target_tokenizer: TargetTokenizer,
}

/// The tokenizer of the model being trained (DESIGN.md: `target_tokenizer`), or the embedding
/// model's when the recipe names none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetTokenizer {
    pub file: String,
    pub sha256: String,
    /// False when no target tokenizer was given and the embedding model's stands in.
    pub is_target: bool,
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
    /// Passages clustered, and those marked as duplicates of an earlier one.
    pub passages: u64,
    pub duplicate_passages: u64,
    /// Headings of many documents, left out of the labels.
    pub generic_headings: u64,
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
    /// Passages the tree was fitted on when they were a sample (more passages than
    /// `taxonomy.sample_size`; the rest were placed by descending the tree); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted_on_sample: Option<u64>,
    /// In a sharded run fitted on a sample, the shards whose own placements and term counts
    /// were merged (`strata taxonomy --shard I/N`); absent when the stage placed and counted
    /// every passage itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_parts: Option<u64>,
    /// In a sharded run, the shards whose counts of the label phrases were merged (`strata
    /// keywords --shard I/N`); absent when the stage counted every chunk's phrases itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrase_parts: Option<u64>,
    /// The LLM's titles (`[llm] titles`), absent without an `[llm]` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_titles: Option<crate::llm::LlmCalls>,
}

/// `fit`: the passages the tree is for, and the sample it was fitted on when they outnumber
/// `taxonomy.sample_size` (absent: the taxonomy stage clusters every passage itself).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    pub passages: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted_on_sample: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaves: Option<u64>,
}

/// `keywords` (a sharded run's reduce only): when the shards placed their passages in a tree
/// fitted on a sample, the tree they make and its keywords, from the shards' term counts
/// (absent: the taxonomy stage does it all itself).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeywordsSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_parts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary_terms: Option<u64>,
}

/// `subtrees`: the budget and cost floor the selection obeys, and, when the passages outnumber
/// `select.subtree_above`, the subtrees it chooses in (absent: over all passages at once).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubtreesSummary {
    pub passages: u64,
    pub budget_tokens: u64,
    pub cost_floor_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtrees: Option<u64>,
}

/// `select`: the budget and what it bought.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectSummary {
    /// The token budget the selection obeyed (DESIGN.md: `stages.select.budget_tokens`).
    pub budget_tokens: u64,
    /// Copied from the chunk stage's summary, so the selection's record reads on its own.
    pub corpus_tokens: u64,
    pub selected_tokens: u64,
    pub selected_passages: u64,
    pub selected_chunks: u64,
    pub cost_floor_tokens: u64,
    pub eligible_passages: u64,
    /// The seeded uniform-random draw at the same budget (the ablation sets).
    pub random_tokens: u64,
    pub random_passages: u64,
    pub leaves: u64,
    pub leaves_covered: u64,
    /// Level-1 subtrees the subset was chosen in, one after another, when the passages
    /// outnumber `select.subtree_above`; absent when chosen over all passages at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtrees: Option<u64>,
    /// Shards whose picks in their subtrees were used (`strata select --shard I/N`); absent when
    /// the stage chose in every subtree itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picked_parts: Option<u64>,
}

/// `emit`: the training sets' sizes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmitSummary {
    pub scpt_samples: u64,
    pub ssft_samples: u64,
    pub scpt_tokens: u64,
    pub ssft_tokens: u64,
    /// Median over SCPT passage samples of the prompt's share of the sample's target tokens
    /// (the mind map and lead-in framing the passage).
    pub scpt_prompt_share_median: f64,
    /// The ablation sets (zero when the recipe turns them off).
    pub cpt_tokens: u64,
    pub random_scpt_tokens: u64,
    pub random_cpt_tokens: u64,
    /// Question answering from the recipe's questions file (zero without one).
    pub ssft_qa_samples: u64,
    pub ssft_qa_tokens: u64,
    /// Questions whose document has no selected passage (not answerable from the subset),
    /// and questions naming a document the corpus lacks.
    pub questions_unselected: u64,
    pub questions_unknown_document: u64,
    /// The LLM's question answering (`[llm] qa_share`), absent without an `[llm]` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_qa: Option<crate::llm::LlmCalls>,
    /// Samples of `ssft_qa` written from the LLM's replies (included in `ssft_qa_samples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_qa_samples: Option<u64>,
}

/// `index`: in a sharded run, the shards whose own indexes were merged (`strata index --shard
/// I/N`); absent when the stage indexed every chunk itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_parts: Option<u64>,
}

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
    Fit(FitSummary),
    Keywords(KeywordsSummary),
    Subtrees(SubtreesSummary),
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
            StageSummary::Fit(_) => StageName::Fit,
            StageSummary::Keywords(_) => StageName::Keywords,
            StageSummary::Subtrees(_) => StageName::Subtrees,
            StageSummary::Cost(_) => StageName::Cost,
            StageSummary::Report(_) => StageName::Report,
        }
    }

    /// Whether the stage must run again on the next run although nothing changed: calls to
    /// the LLM failed in transit (the cache keeps the replies that came, so only those repeat).
    pub fn retry_next_run(&self) -> bool {
        let pending = |calls: &Option<crate::llm::LlmCalls>| calls.as_ref().is_some_and(|c| c.transient_failures > 0);
        match self {
            StageSummary::Taxonomy(s) => pending(&s.llm_titles),
            StageSummary::Emit(s) => pending(&s.llm_qa),
            _ => false,
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
            StageSummary::Fit(s) => serde_json::to_value(s),
            StageSummary::Keywords(s) => serde_json::to_value(s),
            StageSummary::Subtrees(s) => serde_json::to_value(s),
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
