//! Rows of the files the stages exchange, with their Arrow schemas. A change here is a change
//! of the contract: bump `SCHEMA_VERSION`.

use arrow::datatypes::{DataType, Field, FieldRef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

fn field(name: &str, dt: DataType, nullable: bool) -> FieldRef {
    Arc::new(Field::new(name, dt, nullable))
}

fn str_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// One chunk as ingest writes it (`work/chunks.parquet`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub chunk_id: String,
    pub doc_id: String,
    /// File path relative to the corpus root, plus `:line` for JSONL and `#row` for Parquet.
    pub source: String,
    pub ordinal: u32,
    pub heading_path: Vec<String>,
    pub text: String,
    pub n_tokens: u32,
    pub byte_start: u64,
    pub byte_end: u64,
    /// Hash of `text`: equal texts are exact duplicates.
    pub content_hash: String,
    /// The passage (training unit) the chunk belongs to.
    pub passage_id: String,
}

impl ChunkRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("chunk_id", DataType::Utf8, false),
            field("doc_id", DataType::Utf8, false),
            field("source", DataType::Utf8, false),
            field("ordinal", DataType::UInt32, false),
            field("heading_path", str_list(), false),
            field("text", DataType::Utf8, false),
            field("n_tokens", DataType::UInt32, false),
            field("byte_start", DataType::UInt64, false),
            field("byte_end", DataType::UInt64, false),
            field("content_hash", DataType::Utf8, false),
            field("passage_id", DataType::Utf8, false),
        ]
    }
}

/// One passage as the chunk stage writes it (`work/passages.parquet`): consecutive chunks of
/// one document, the training unit, sized in the target model's tokens. Passages are in
/// chunk order, so a passage's chunks are the rows `first_chunk .. first_chunk + n_chunks` of
/// `work/chunks.parquet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassageRecord {
    pub passage_id: String,
    pub doc_id: String,
    /// Row of the passage's first chunk in `work/chunks.parquet`.
    pub first_chunk: u64,
    pub n_chunks: u32,
    /// The document's text from the first chunk's start to the last chunk's end (headings
    /// between its chunks included).
    pub text: String,
    /// Tokens of `text` in the target tokenizer.
    pub n_tokens: u32,
    /// Hash of `text`: equal texts are exact duplicates.
    pub content_hash: String,
}

impl PassageRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("passage_id", DataType::Utf8, false),
            field("doc_id", DataType::Utf8, false),
            field("first_chunk", DataType::UInt64, false),
            field("n_chunks", DataType::UInt32, false),
            field("text", DataType::Utf8, false),
            field("n_tokens", DataType::UInt32, false),
            field("content_hash", DataType::Utf8, false),
        ]
    }
}

/// One source document (`work/documents.parquet`); `metadata` keeps the extra JSONL/Parquet
/// columns (as a JSON object) for evaluation against human labels. Never a pipeline input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRecord {
    pub doc_id: String,
    pub source: String,
    pub n_bytes: u64,
    pub n_chunks: u32,
    pub metadata: String,
}

impl DocumentRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("doc_id", DataType::Utf8, false),
            field("source", DataType::Utf8, false),
            field("n_bytes", DataType::UInt64, false),
            field("n_chunks", DataType::UInt32, false),
            field("metadata", DataType::Utf8, false),
        ]
    }
}

/// One row of `embeddings.parquet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRecord {
    pub chunk_id: String,
    pub embedding: Vec<f32>,
}

impl EmbeddingRecord {
    pub fn fields(dim: usize) -> Vec<FieldRef> {
        vec![
            field("chunk_id", DataType::Utf8, false),
            field("embedding", DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim as i32), false),
        ]
    }
}

/// Where the taxonomy put a chunk (`work/assignments.parquet`), in chunk order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignmentRecord {
    pub chunk_id: String,
    pub node_id: u32,
    pub duplicate_of: Option<String>,
}

impl AssignmentRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("chunk_id", DataType::Utf8, false),
            field("node_id", DataType::UInt32, false),
            field("duplicate_of", DataType::Utf8, true),
        ]
    }
}

/// Where the taxonomy put a passage (`work/passage_assignments.parquet`), in passage order;
/// its chunks are in the same leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassageAssignment {
    pub passage_id: String,
    pub node_id: u32,
    pub duplicate_of: Option<String>,
}

impl PassageAssignment {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("passage_id", DataType::Utf8, false),
            field("node_id", DataType::UInt32, false),
            field("duplicate_of", DataType::Utf8, true),
        ]
    }
}

/// Where a shard put a passage (`work/placements.parquet` of its part, `strata taxonomy --shard
/// I/N`): the leaf of the fitted tree its topic vector descends to, by the leaf's position among
/// the fitted tree's leaves (depth-first), in passage order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementRecord {
    pub passage_id: String,
    pub leaf: u32,
}

impl PlacementRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![field("passage_id", DataType::Utf8, false), field("leaf", DataType::UInt32, false)]
    }
}

/// A label term of a shard's chunks (`work/terms.parquet` of its part), sorted by term, with
/// the number of chunks holding it; its position is its id in `work/leaf_terms.parquet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermRecord {
    pub term: String,
    pub chunks: u32,
}

impl TermRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![field("term", DataType::Utf8, false), field("chunks", DataType::UInt32, false)]
    }
}

/// How often a term occurs in a shard's chunks placed in one leaf of the fitted tree
/// (`work/leaf_terms.parquet` of its part), by leaf, then term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeafTermRecord {
    pub leaf: u32,
    pub term: u32,
    pub count: u32,
}

impl LeafTermRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![field("leaf", DataType::UInt32, false), field("term", DataType::UInt32, false), field("count", DataType::UInt32, false)]
    }
}

/// A heading of a shard's chunks, the first or the last of a chunk's heading path
/// (`work/headings.parquet` of its part), by heading: the documents whose chunks hold it, where
/// it is first seen (twice the chunk's row, plus one when it is the chunk's last heading and not
/// its first), and the chunks that hold it in each leaf of the fitted tree (`chunks[i]` in leaf
/// `leaves[i]`, leaves ascending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadingRecord {
    pub heading: String,
    pub documents: u32,
    pub first_seen: u64,
    pub leaves: Vec<u32>,
    pub chunks: Vec<u32>,
}

impl HeadingRecord {
    pub fn fields() -> Vec<FieldRef> {
        let u32_list = || DataType::List(Arc::new(Field::new("item", DataType::UInt32, false)));
        vec![
            field("heading", DataType::Utf8, false),
            field("documents", DataType::UInt32, false),
            field("first_seen", DataType::UInt64, false),
            field("leaves", u32_list(), false),
            field("chunks", u32_list(), false),
        ]
    }
}

/// A label phrase of a shard's chunks counted in one node of the run's tree
/// (`work/phrases.parquet` of its part), by node, then phrase: the chunks that hold it, and
/// each form it is written in with its occurrences (`surfaces[i]` occurs `surface_counts[i]` times).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhraseRecord {
    pub node: u32,
    pub phrase: String,
    pub chunks: u32,
    pub surfaces: Vec<String>,
    pub surface_counts: Vec<u32>,
}

impl PhraseRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("node", DataType::UInt32, false),
            field("phrase", DataType::Utf8, false),
            field("chunks", DataType::UInt32, false),
            field("surfaces", str_list(), false),
            field("surface_counts", DataType::List(Arc::new(Field::new("item", DataType::UInt32, false))), false),
        ]
    }
}

/// A passage as selection sees it (`work/subtree_passages.parquet`), grouped by the
/// subtree it is chosen in, in passage order within each: its position among the run's
/// passages, its leaf, size, eligibility and vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubtreePassage {
    pub passage: u64,
    pub leaf: u32,
    pub n_tokens: u32,
    pub eligible: bool,
    pub vector: Vec<f32>,
}

impl SubtreePassage {
    pub fn fields(dim: usize) -> Vec<FieldRef> {
        vec![
            field("passage", DataType::UInt64, false),
            field("leaf", DataType::UInt32, false),
            field("n_tokens", DataType::UInt32, false),
            field("eligible", DataType::Boolean, false),
            field("vector", DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim as i32), false),
        ]
    }
}

/// Whether a shard's choice in its subtrees took a passage (`work/picks.parquet` of its part,
/// `strata select --shard I/N`), in the order of `work/subtree_passages.parquet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PickRecord {
    pub passage: u64,
    pub selected: bool,
}

impl PickRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![field("passage", DataType::UInt64, false), field("selected", DataType::Boolean, false)]
    }
}

/// Whether selection took a passage (`work/selection.parquet`), in passage order; `random`:
/// whether the seeded uniform-random draw at the same budget took it (the ablation sets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionRecord {
    pub passage_id: String,
    pub selected: bool,
    pub random: bool,
}

impl SelectionRecord {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("passage_id", DataType::Utf8, false),
            field("selected", DataType::Boolean, false),
            field("random", DataType::Boolean, false),
        ]
    }
}

/// One taxonomy node (`taxonomy.parquet`); the tree is flat, in depth-first order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaxonomyNode {
    pub node_id: u32,
    pub parent_id: Option<u32>,
    pub depth: u8,
    pub label: String,
    pub keywords: Vec<String>,
    /// Labels from the first level below the root down to this node (empty for the root).
    pub path: Vec<String>,
    pub n_chunks: u32,
    pub n_tokens: u64,
    pub medoid_chunk_id: Option<String>,
    /// With `[llm] titles`, the label the node had before the LLM titled it (the column is
    /// absent otherwise): `label` is then the title, or this label again where the title failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword_label: Option<String>,
}

impl TaxonomyNode {
    /// The columns; `titled` adds `keyword_label`.
    pub fn fields(titled: bool) -> Vec<FieldRef> {
        let mut fields = vec![
            field("node_id", DataType::UInt32, false),
            field("parent_id", DataType::UInt32, true),
            field("depth", DataType::UInt8, false),
            field("label", DataType::Utf8, false),
            field("keywords", str_list(), false),
            field("path", str_list(), false),
            field("n_chunks", DataType::UInt32, false),
            field("n_tokens", DataType::UInt64, false),
            field("medoid_chunk_id", DataType::Utf8, true),
        ];
        if titled {
            fields.push(field("keyword_label", DataType::Utf8, false));
        }
        fields
    }
}

/// One row of the published `chunks.parquet`: the chunk with its place in the taxonomy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedChunk {
    pub chunk_id: String,
    pub doc_id: String,
    pub source: String,
    pub ordinal: u32,
    pub heading_path: Vec<String>,
    pub text: String,
    pub n_tokens: u32,
    pub byte_start: u64,
    pub byte_end: u64,
    pub node_id: u32,
    pub taxonomy_path: Vec<String>,
    pub duplicate_of: Option<String>,
    pub selected: bool,
    pub passage_id: String,
}

impl PublishedChunk {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("chunk_id", DataType::Utf8, false),
            field("doc_id", DataType::Utf8, false),
            field("source", DataType::Utf8, false),
            field("ordinal", DataType::UInt32, false),
            field("heading_path", str_list(), false),
            field("text", DataType::Utf8, false),
            field("n_tokens", DataType::UInt32, false),
            field("byte_start", DataType::UInt64, false),
            field("byte_end", DataType::UInt64, false),
            field("node_id", DataType::UInt32, false),
            field("taxonomy_path", str_list(), false),
            field("duplicate_of", DataType::Utf8, true),
            field("selected", DataType::Boolean, false),
            field("passage_id", DataType::Utf8, false),
        ]
    }
}

/// One row of the published `passages.parquet`: the training unit with its place in the
/// taxonomy (its chunks share it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedPassage {
    pub passage_id: String,
    pub doc_id: String,
    pub chunk_ids: Vec<String>,
    pub text: String,
    /// Target tokens of `text`.
    pub n_tokens: u32,
    pub node_id: u32,
    pub taxonomy_path: Vec<String>,
    /// The heading path above the passage's first chunk (the document's own structure).
    pub heading_path: Vec<String>,
    pub duplicate_of: Option<String>,
    pub selected: bool,
}

impl PublishedPassage {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("passage_id", DataType::Utf8, false),
            field("doc_id", DataType::Utf8, false),
            field("chunk_ids", str_list(), false),
            field("text", DataType::Utf8, false),
            field("n_tokens", DataType::UInt32, false),
            field("node_id", DataType::UInt32, false),
            field("taxonomy_path", str_list(), false),
            field("heading_path", str_list(), false),
            field("duplicate_of", DataType::Utf8, true),
            field("selected", DataType::Boolean, false),
        ]
    }
}

/// One training sample of any set in `train/` (`n_tokens` in target tokens). All carry the alpaca
/// columns too (for SCPT: `instruction` = prompt, `input` empty, `output` = response), so one
/// schema serves plain-text, prompt/response and alpaca trainers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// `prompt` and `response` joined, for plain-text trainers.
    pub text: String,
    pub prompt: String,
    pub response: String,
    pub kind: String,
    pub chunk_id: Option<String>,
    pub passage_id: Option<String>,
    pub node_id: u32,
    pub taxonomy_path: Vec<String>,
    pub n_tokens: u32,
    pub instruction: String,
    pub input: String,
    pub output: String,
    /// Where a question-answer sample of `ssft_qa` comes from, `questions` (the recipe's file)
    /// or `llm`; the column exists only in a run with an LLM writing questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl Sample {
    pub fn fields() -> Vec<FieldRef> {
        vec![
            field("text", DataType::Utf8, false),
            field("prompt", DataType::Utf8, false),
            field("response", DataType::Utf8, false),
            field("kind", DataType::Utf8, false),
            field("chunk_id", DataType::Utf8, true),
            field("passage_id", DataType::Utf8, true),
            field("node_id", DataType::UInt32, false),
            field("taxonomy_path", str_list(), false),
            field("n_tokens", DataType::UInt32, false),
            field("instruction", DataType::Utf8, false),
            field("input", DataType::Utf8, false),
            field("output", DataType::Utf8, false),
        ]
    }

    /// The columns of `ssft_qa` when an LLM writes questions: `origin` besides the rest.
    pub fn fields_with_origin() -> Vec<FieldRef> {
        let mut fields = Self::fields();
        fields.push(field("origin", DataType::Utf8, false));
        fields
    }
}
