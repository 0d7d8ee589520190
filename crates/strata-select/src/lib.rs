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

pub use facility::{cost_floor, random_draw, select, Budget, Candidate};
pub use parts::PartSelectStage;
use subtrees::Subtrees;
pub use subtrees::SubtreesStage;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use strata_core::parquet_io::{ParquetIoError, RowWriter};
use strata_core::records::{PassageAssignment, SelectionRecord};
use strata_core::rundir::{
    MANIFEST, WORK_CHUNKS, WORK_PASSAGES, WORK_PASSAGE_ASSIGNMENTS, WORK_SELECTION, WORK_SUBTREES, WORK_SUBTREE_PASSAGES,
};
use strata_core::shard::Parts;
use strata_core::summary::SelectSummary;
use strata_core::{parquet_io, PassageIndex, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

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
        let units = read_passages(ctx, self.config.min_passage_tokens)?;
        let listing = Subtrees::read(&ctx.run.path(WORK_SUBTREES))?;
        listing.check_settings(&self.config, &ctx.run.path(WORK_SUBTREES))?;
        let budget = Budget { tokens: listing.budget_tokens };
        // Sizes and eligibility alone: what the random draw and the figures need.
        let candidates: Vec<Candidate> = (0..units.passages.len()).map(|p| units.candidate(p, &[])).collect();
        ctx.progress.start("select", None);
        let mut chosen = vec![false; units.passages.len()];
        let picked = parts::choose_by_group(ctx, &listing, self.parts.as_ref(), &self.config, self.seed, &mut chosen)?;
        let random = random_draw(&candidates, budget, self.seed);
        ctx.progress.finish();

        let mut rows = RowWriter::create(&ctx.output(WORK_SELECTION)?, &SelectionRecord::fields(), &[])?;
        for (p, id) in PassageIndex::ids(&ctx.run.path(WORK_PASSAGES))?.enumerate() {
            rows.push(SelectionRecord { passage_id: id?, selected: chosen[p], random: random[p] })?;
        }
        let n_rows = rows.rows();
        rows.close()?;
        let floor = listing.cost_floor_tokens;
        let by_subtree = listing.by_subtree().then_some(listing.groups.len() as u64);
        let summary = SelectSummary {
            subtrees: by_subtree,
            picked_parts: (picked > 0).then_some(picked),
            ..summarise(&units.passages, &candidates, [&chosen, &random], budget, corpus_tokens, floor)
        };
        Ok(StageStats { rows_in: candidates.len() as u64, rows_out: n_rows, summary: StageSummary::Select(summary) })
    }
}

/// The manifest's figures of a selection: `drawn` is the selection and the random draw.
fn summarise(
    passages: &PassageIndex,
    candidates: &[Candidate],
    drawn: [&[bool]; 2],
    budget: Budget,
    corpus_tokens: u64,
    floor: u32,
) -> SelectSummary {
    let [chosen, random] = drawn;
    let taken = |picks: &[bool]| (0..candidates.len()).filter(|&p| picks[p]).collect::<Vec<usize>>();
    let (selected, drawn_at_random) = (taken(chosen), taken(random));
    let tokens = |ps: &[usize]| ps.iter().map(|&p| candidates[p].n_tokens as u64).sum();
    let leaves = |ps: &mut dyn Iterator<Item = usize>| ps.map(|p| candidates[p].leaf).collect::<BTreeSet<u32>>().len() as u64;
    SelectSummary {
        budget_tokens: budget.tokens,
        corpus_tokens,
        selected_tokens: tokens(&selected),
        selected_passages: selected.len() as u64,
        selected_chunks: selected.iter().map(|&p| passages.n_chunks[p] as u64).sum(),
        cost_floor_tokens: floor as u64,
        eligible_passages: candidates.iter().filter(|c| c.eligible).count() as u64,
        random_tokens: tokens(&drawn_at_random),
        random_passages: drawn_at_random.len() as u64,
        leaves: leaves(&mut (0..candidates.len())),
        leaves_covered: leaves(&mut selected.iter().copied()),
        subtrees: None,
        picked_parts: None,
    }
}

/// Every passage with its leaf and eligibility.
pub(crate) struct Passages {
    pub(crate) passages: PassageIndex,
    pub(crate) leaf: Vec<u32>,
    eligible: Vec<bool>,
}

impl Passages {
    pub(crate) fn eligible(&self, p: usize) -> bool {
        self.eligible[p]
    }

    /// Passage `p` as selection sees it, with its `vector`.
    pub(crate) fn candidate<'a>(&self, p: usize, vector: &'a [f32]) -> Candidate<'a> {
        Candidate { leaf: self.leaf[p], n_tokens: self.passages.n_tokens[p], eligible: self.eligible[p], vector }
    }
}

/// The corpus's tokens, as the chunk stage recorded them.
pub(crate) fn corpus_tokens(ctx: &StageContext) -> Result<u64, SelectError> {
    let chunk = ctx.manifest.stages.chunk.as_ref().ok_or(SelectError::NoChunkSummary { path: ctx.run.path(MANIFEST) })?;
    Ok(chunk.summary.corpus_tokens)
}

pub(crate) fn read_passages(ctx: &StageContext, min_tokens: u32) -> Result<Passages, ParquetIoError> {
    let chunk_rows = parquet_io::num_rows(&ctx.run.path(WORK_CHUNKS))? as usize;
    let passages = PassageIndex::read(&ctx.run.path(WORK_PASSAGES), chunk_rows)?;
    // Each passage's leaf and whether it duplicates another, read with the ids in step.
    let path = ctx.run.path(WORK_PASSAGE_ASSIGNMENTS);
    let mut ids = PassageIndex::ids(&ctx.run.path(WORK_PASSAGES))?;
    let (mut leaf, mut eligible) = (Vec::with_capacity(passages.len()), Vec::with_capacity(passages.len()));
    for placed in parquet_io::rows::<PassageAssignment>(&path, &["passage_id", "node_id", "duplicate_of"])? {
        let (placed, p) = (placed?, leaf.len());
        if p == passages.len() || ids.next().transpose()?.as_ref() != Some(&placed.passage_id) {
            return Err(ParquetIoError::OutOfStep { path });
        }
        eligible.push(strata_core::eligible(passages.n_tokens[p], placed.duplicate_of.is_some(), min_tokens));
        leaf.push(placed.node_id);
    }
    if leaf.len() != passages.len() {
        return Err(ParquetIoError::OutOfStep { path });
    }
    Ok(Passages { leaf, eligible, passages })
}
