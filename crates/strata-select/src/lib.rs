//! strata-select: the token-budgeted training subset that covers the taxonomy.
//!
//! The unit is the passage (the training unit; its vector is the mean of its chunks'), sized
//! in target tokens. It owns the budget (a fraction of corpus tokens or an absolute count),
//! eligibility (no near-duplicate, no passage under the minimum size), and the choice itself:
//! one passage for every leaf first while the budget allows, then greedy facility location
//! over each leaf's passages by gain per token, which shares the rest out by node size; and
//! the seeded uniform-random draw at the same budget that the ablation sets train on. Two
//! stages: `subtrees` fixes the budget and groups the passages' vectors by subtree (at most
//! `subtree_above` passages each, `subtrees`), and `select` chooses in each group and writes `work/selection.parquet`; in a
//! sharded run the shards can choose in the groups between the two (`parts`).

mod facility;
mod parts;
mod subtrees;

use facility::draw_at_random;
pub use facility::{cost_floor, random_draw, select, Budget, Candidate};
pub use parts::PartSelectStage;
use subtrees::Subtrees;
pub use subtrees::SubtreesStage;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use strata_core::parquet_io::{ParquetIoError, RowWriter};
use strata_core::passages::PassageRows;
use strata_core::records::{PassageAssignment, SelectionRecord};
use strata_core::rundir::{
    MANIFEST, WORK_CHUNKS, WORK_PASSAGES, WORK_PASSAGE_ASSIGNMENTS, WORK_SELECTION, WORK_SUBTREES, WORK_SUBTREE_PASSAGES,
};
use strata_core::shard::Parts;
use strata_core::summary::SelectSummary;
use strata_core::{parquet_io, PassageIndex, PassagesFile, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

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
    /// Passages under this many target tokens are never selected: they are crumbs (a stray
    /// line, a short list item) that teach little and would win on gain per token.
    pub min_passage_tokens: u32,
    /// A passage costs at least this share of the median eligible passage when selection
    /// ranks by gain per cost (the budget still counts real tokens). Facility-location gain
    /// does not grow with length, so per token the shortest passages would win and the prompt
    /// would dominate the samples; at 1.6 (960 tokens on MedQuAD) the prompt is under a fifth
    /// of the median sample, and a lower floor covers more leaves (BENCHMARKS.md, passages).
    pub cost_floor: f64,
    /// Chunks of a leaf that its facility-location score is measured on (a seeded sample
    /// for larger leaves, so the work stays linear in the corpus).
    pub max_clients: usize,
    /// No two selected chunks have a cosine at or above this (near-duplicates teach nothing twice).
    pub max_similarity: f32,
    /// Above this many passages, the subset is chosen per subtree of at most this many passages
    /// (the level-1 subtrees, those larger split into their children, down to leaves), each
    /// with its share of the budget (what covering its leaves costs, then the rest by its
    /// share of the passages' tokens), so that a choice holds one
    /// subtree's passage vectors, never all (and a sharded run's shards can make the choices).
    /// At or below, over all passages at once.
    pub subtree_above: usize,
}

impl Default for SelectConfig {
    fn default() -> Self {
        Self {
            budget: 0.05,
            budget_tokens: None,
            min_passage_tokens: 128,
            cost_floor: 1.6,
            max_clients: 512,
            max_similarity: 0.95,
            subtree_above: 50_000,
        }
    }
}

impl SelectConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=4.0).contains(&self.cost_floor) {
            return Err(format!("select.cost_floor = {} must be a share of the median passage in [0, 4]", self.cost_floor));
        }
        if !(self.max_similarity > 0.0 && self.max_similarity <= 1.0) {
            return Err(format!("select.max_similarity = {} must be in (0, 1]", self.max_similarity));
        }
        if self.subtree_above == 0 {
            return Err("select.subtree_above must be at least 1".into());
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

/// The selection stage: the choice in each group of `work/subtrees.json` (in a sharded run, the
/// shards' picks where they are current) and the random draw, into `work/selection.parquet`.
pub struct SelectStage {
    pub config: SelectConfig,
    pub seed: u64,
    /// A sharded run's parts, whose picks are used when current.
    pub parts: Option<Parts>,
}

impl Stage for SelectStage {
    fn name(&self) -> StageName {
        StageName::Select
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, WORK_PASSAGES, WORK_PASSAGE_ASSIGNMENTS, WORK_SUBTREES, WORK_SUBTREE_PASSAGES]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![WORK_SELECTION]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(json!({"config": self.config, "seed": self.seed}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate().map_err(SelectError::Config)?;
        let corpus_tokens = corpus_tokens(ctx)?;
        let listing = Subtrees::read(&ctx.run.path(WORK_SUBTREES))?;
        listing.check_settings(&self.config, &ctx.run.path(WORK_SUBTREES))?;
        let budget = Budget { tokens: listing.budget_tokens };
        let min_tokens = self.config.min_passage_tokens;
        ctx.progress.start("select", None);
        let (chosen, picked_parts) = parts::choose_by_group(ctx, &listing, self.parts.as_ref(), &self.config, self.seed)?;
        let eligible = || -> Result<_, ParquetIoError> {
            let passages = placed_passages(ctx, min_tokens)?.zip(0..);
            Ok(passages.filter(|(p, _)| p.as_ref().map_or(true, |p| p.eligible)).map(|(p, i)| p.map(|p| (i, p.n_tokens))))
        };
        let random = draw_at_random(eligible, budget, self.seed)?;
        ctx.progress.finish();

        // One pass writes the selection and sums its figures.
        let mut rows = RowWriter::create(&ctx.output(WORK_SELECTION)?, &SelectionRecord::fields(), &[])?;
        let mut figures = Figures::default();
        let (mut in_chosen, mut in_random) = (chosen.iter().peekable(), random.iter().peekable());
        for (placed, p) in placed_passages(ctx, min_tokens)?.zip(0u64..) {
            let placed = placed?;
            let (selected, random) = (in_chosen.next_if_eq(&&p).is_some(), in_random.next_if_eq(&&p).is_some());
            figures.add(&placed, selected, random);
            rows.push(SelectionRecord { passage_id: placed.id, selected, random })?;
        }
        let n_rows = rows.rows();
        if let Some(p) = in_chosen.next() {
            return Err(format!("`{}`: passage {p} is not of this run", ctx.run.path(WORK_SUBTREE_PASSAGES).display()).into());
        }
        rows.close()?;
        let summary = SelectSummary {
            budget_tokens: budget.tokens,
            corpus_tokens,
            cost_floor_tokens: listing.cost_floor_tokens as u64,
            subtrees: listing.by_subtree().then_some(listing.groups.len() as u64),
            picked_parts: (picked_parts > 0).then_some(picked_parts),
            ..figures.summary()
        };
        Ok(StageStats { rows_in: n_rows, rows_out: n_rows, summary: StageSummary::Select(summary) })
    }
}

/// A selection's figures, summed passage by passage: the selection's and the random draw's
/// sizes, the eligible passages, the leaves and those the selection covers.
#[derive(Default)]
struct Figures {
    summary: SelectSummary,
    leaves: BTreeSet<u32>,
    covered: BTreeSet<u32>,
}

impl Figures {
    fn add(&mut self, passage: &Placed, selected: bool, random: bool) {
        let s = &mut self.summary;
        self.leaves.insert(passage.leaf);
        s.eligible_passages += passage.eligible as u64;
        if selected {
            (s.selected_tokens, s.selected_passages) = (s.selected_tokens + passage.n_tokens as u64, s.selected_passages + 1);
            s.selected_chunks += passage.n_chunks as u64;
            self.covered.insert(passage.leaf);
        }
        if random {
            (s.random_tokens, s.random_passages) = (s.random_tokens + passage.n_tokens as u64, s.random_passages + 1);
        }
    }

    fn summary(self) -> SelectSummary {
        SelectSummary { leaves: self.leaves.len() as u64, leaves_covered: self.covered.len() as u64, ..self.summary }
    }
}

/// A passage as selection sees it, without its vector: its id, sizes, leaf and eligibility.
pub(crate) struct Placed {
    pub(crate) id: String,
    pub(crate) n_tokens: u32,
    pub(crate) n_chunks: u32,
    pub(crate) leaf: u32,
    pub(crate) eligible: bool,
}

/// The corpus's tokens, as the chunk stage recorded them.
pub(crate) fn corpus_tokens(ctx: &StageContext) -> Result<u64, SelectError> {
    let chunk = ctx.manifest.stages.chunk.as_ref().ok_or(SelectError::NoChunkSummary { path: ctx.run.path(MANIFEST) })?;
    Ok(chunk.summary.corpus_tokens)
}

/// Every passage with its leaf and eligibility, in passage order, read a batch at a time:
/// `work/passages.parquet` and `work/passage_assignments.parquet` in step (their ids must match).
pub(crate) fn placed_passages(ctx: &StageContext, min_tokens: u32) -> Result<PlacedPassages, ParquetIoError> {
    let chunk_rows = parquet_io::num_rows(&ctx.run.path(WORK_CHUNKS))?;
    let path = ctx.run.path(WORK_PASSAGE_ASSIGNMENTS);
    Ok(PlacedPassages {
        passages: PassagesFile::new(&ctx.run.path(WORK_PASSAGES), chunk_rows).rows()?,
        ids: Box::new(PassageIndex::ids(&ctx.run.path(WORK_PASSAGES))?),
        assignments: parquet_io::rows(&path, &["passage_id", "node_id", "duplicate_of"])?,
        path,
        min_tokens,
        done: false,
    })
}

/// [`placed_passages`].
pub(crate) struct PlacedPassages {
    passages: PassageRows,
    ids: Box<dyn Iterator<Item = Result<String, ParquetIoError>>>,
    assignments: parquet_io::Rows<PassageAssignment>,
    path: std::path::PathBuf,
    min_tokens: u32,
    done: bool,
}

impl PlacedPassages {
    fn step(&mut self) -> Result<Option<Placed>, ParquetIoError> {
        let (passage, id, placed) = match (self.passages.next(), self.ids.next(), self.assignments.next()) {
            (None, None, None) => return Ok(None),
            (Some(passage), Some(id), Some(placed)) => (passage?, id?, placed?),
            (Some(Err(e)), _, _) | (_, Some(Err(e)), _) | (_, _, Some(Err(e))) => return Err(e),
            _ => return Err(ParquetIoError::OutOfStep { path: self.path.clone() }),
        };
        if id != placed.passage_id {
            return Err(ParquetIoError::OutOfStep { path: self.path.clone() });
        }
        let eligible = strata_core::eligible(passage.n_tokens, placed.duplicate_of.is_some(), self.min_tokens);
        Ok(Some(Placed { id, n_tokens: passage.n_tokens, n_chunks: passage.n_chunks, leaf: placed.node_id, eligible }))
    }
}

impl Iterator for PlacedPassages {
    type Item = Result<Placed, ParquetIoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = self.step();
        self.done = !matches!(step, Ok(Some(_)));
        step.transpose()
    }
}
