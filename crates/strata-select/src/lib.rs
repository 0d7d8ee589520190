//! strata-select: the token-budgeted training subset that covers the taxonomy.
//!
//! It owns the budget (a fraction of corpus tokens or an absolute count), eligibility (no
//! near-duplicate, no chunk under the minimum size), and the choice itself: one chunk for
//! every leaf first while the budget allows, then greedy facility location over each leaf's
//! chunks by gain per token, which shares the rest out by node size. It writes
//! `work/selection.parquet` and nothing else.

mod facility;

pub use facility::{cost_floor, select, Budget, Candidate};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use strata_core::parquet_io::{ParquetIoError, RowWriter, VectorsInStep};
use strata_core::records::{AssignmentRecord, SelectionRecord};
use strata_core::rundir::{EMBEDDINGS, MANIFEST, WORK_ASSIGNMENTS, WORK_CHUNKS, WORK_SELECTION};
use strata_core::summary::SelectSummary;
use strata_core::{parquet_io, Matrix, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

/// Why the selection stage failed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("invalid select setting: {0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] ParquetIoError),
    #[error("`{path}` has no record of the chunk stage (its corpus totals); rerun the chunk stage")]
    NoChunkSummary { path: std::path::PathBuf },
}

/// How much to select and what may be selected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectConfig {
    /// Budget as a fraction of the corpus tokens (e.g. 0.003, 0.01, 0.05).
    pub budget: f64,
    /// Budget as an absolute token count; overrides `budget` when set.
    pub budget_tokens: Option<u64>,
    /// Chunks under this many tokens are never selected: they are crumbs (a stray line, a
    /// short list item) that teach little and would win on gain per token.
    pub min_chunk_tokens: u32,
    /// A chunk costs at least this share of the median eligible chunk when selection ranks by
    /// gain per cost (the budget still counts real tokens), so shorter is not better below it.
    pub cost_floor: f64,
    /// Chunks of a leaf that its facility-location score is measured on (a seeded sample
    /// for larger leaves, so the work stays linear in the corpus).
    pub max_clients: usize,
    /// No two selected chunks have a cosine at or above this (near-duplicates teach nothing twice).
    pub max_similarity: f32,
}

impl Default for SelectConfig {
    fn default() -> Self {
        Self { budget: 0.05, budget_tokens: None, min_chunk_tokens: 32, cost_floor: 0.75, max_clients: 512, max_similarity: 0.95 }
    }
}

impl SelectConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=4.0).contains(&self.cost_floor) {
            return Err(format!("select.cost_floor = {} must be a share of the median chunk in [0, 4]", self.cost_floor));
        }
        if !(self.max_similarity > 0.0 && self.max_similarity <= 1.0) {
            return Err(format!("select.max_similarity = {} must be in (0, 1]", self.max_similarity));
        }
        match self.budget_tokens {
            Some(0) => Err("select.budget_tokens must be positive".into()),
            Some(_) => Ok(()),
            None if !(self.budget > 0.0 && self.budget <= 1.0) => {
                Err(format!("select.budget = {} must be a fraction in (0, 1]", self.budget))
            }
            None => Ok(()),
        }
    }

    /// The budget in tokens for a corpus of `corpus_tokens`.
    pub fn budget_tokens(&self, corpus_tokens: u64) -> u64 {
        self.budget_tokens.unwrap_or_else(|| (self.budget * corpus_tokens as f64).floor() as u64)
    }
}

/// The selection stage.
pub struct SelectStage {
    pub config: SelectConfig,
    pub seed: u64,
}

impl Stage for SelectStage {
    fn name(&self) -> StageName {
        StageName::Select
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, EMBEDDINGS, WORK_ASSIGNMENTS]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![WORK_SELECTION]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(json!({"config": self.config, "seed": self.seed}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate().map_err(SelectError::Config)?;
        let corpus_tokens =
            ctx.manifest.stages.chunk.as_ref().ok_or(SelectError::NoChunkSummary { path: ctx.run.path(MANIFEST) })?.summary.corpus_tokens;
        let chunks = read_chunks(ctx, self.config.min_chunk_tokens)?;
        let budget = Budget { tokens: self.config.budget_tokens(corpus_tokens) };
        let candidates = chunks.candidates();
        ctx.progress.start("select", None);
        let floor = cost_floor(&candidates, self.config.cost_floor);
        let chosen = select(&candidates, budget, floor, self.config.max_clients, self.config.max_similarity, self.seed);
        ctx.progress.finish();

        // The chunk ids are read again rather than kept: one column, a batch at a time.
        let mut rows = RowWriter::create(&ctx.output(WORK_SELECTION)?, &SelectionRecord::fields(), &[])?;
        let mut chosen_in_order = chosen.iter();
        for batch in parquet_io::batches::<ChunkId>(&ctx.run.path(WORK_CHUNKS), &["chunk_id"])? {
            for (c, &selected) in batch?.into_iter().zip(&mut chosen_in_order) {
                rows.push(SelectionRecord { chunk_id: c.chunk_id, selected })?;
            }
        }
        let n_rows = rows.rows();
        if n_rows != chosen.len() as u64 {
            return Err(ParquetIoError::OutOfStep { path: ctx.run.path(WORK_CHUNKS) }.into());
        }
        rows.close()?;
        let summary = summarise(&candidates, &chosen, budget, corpus_tokens, floor);
        Ok(StageStats { rows_in: candidates.len() as u64, rows_out: n_rows, summary: StageSummary::Select(summary) })
    }
}

/// The manifest's figures of a selection.
fn summarise(candidates: &[Candidate], chosen: &[bool], budget: Budget, corpus_tokens: u64, floor: u32) -> SelectSummary {
    let taken = || candidates.iter().zip(chosen).filter(|(_, &s)| s).map(|(c, _)| c);
    SelectSummary {
        budget_tokens: budget.tokens,
        corpus_tokens,
        selected_tokens: taken().map(|c| c.n_tokens as u64).sum(),
        selected_chunks: taken().count() as u64,
        cost_floor_tokens: floor as u64,
        eligible_chunks: candidates.iter().filter(|c| c.eligible).count() as u64,
        leaves: candidates.iter().map(|c| c.leaf).collect::<BTreeSet<u32>>().len() as u64,
        leaves_covered: taken().map(|c| c.leaf).collect::<BTreeSet<u32>>().len() as u64,
    }
}

/// What selection needs of a chunk, besides its vector.
struct ChunkFacts {
    leaf: u32,
    n_tokens: u32,
    eligible: bool,
}

/// Every chunk's facts and its vector (row `i` of `vectors`), read a batch at a time from the
/// chunks (two columns), the assignments and the embeddings in step, ids checked.
struct Chunks {
    facts: Vec<ChunkFacts>,
    vectors: Matrix,
}

impl Chunks {
    fn candidates(&self) -> Vec<Candidate<'_>> {
        let facts = self.facts.iter().enumerate();
        facts.map(|(i, c)| Candidate { leaf: c.leaf, n_tokens: c.n_tokens, eligible: c.eligible, vector: self.vectors.row(i) }).collect()
    }
}

#[derive(Deserialize)]
struct ChunkId {
    chunk_id: String,
}

#[derive(Deserialize)]
struct ChunkSize {
    chunk_id: String,
    n_tokens: u32,
}

fn read_chunks(ctx: &StageContext, min_chunk_tokens: u32) -> Result<Chunks, ParquetIoError> {
    let mut assignments = parquet_io::batches::<AssignmentRecord>(&ctx.run.path(WORK_ASSIGNMENTS), &[])?;
    let mut vectors = VectorsInStep::open(&ctx.run.path(EMBEDDINGS))?;
    let mut facts = Vec::new();
    for batch in parquet_io::batches::<ChunkSize>(&ctx.run.path(WORK_CHUNKS), &["chunk_id", "n_tokens"])? {
        let batch = batch?;
        vectors.extend(batch.iter().map(|c| c.chunk_id.as_str()))?;
        let placed = assignments.next_in_step(batch.len())?;
        for (c, a) in batch.into_iter().zip(placed) {
            if a.chunk_id != c.chunk_id {
                return Err(ParquetIoError::OutOfStep { path: assignments.path().to_path_buf() });
            }
            facts.push(ChunkFacts {
                leaf: a.node_id,
                n_tokens: c.n_tokens,
                eligible: strata_core::eligible(c.n_tokens, a.duplicate_of.is_some(), min_chunk_tokens),
            });
        }
    }
    assignments.end_in_step()?;
    Ok(Chunks { facts, vectors: vectors.finish()? })
}
