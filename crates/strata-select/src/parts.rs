//! A sharded run's selection, chosen by the shards: once the reduce has grouped the passages by
//! subtree (`strata run --shards N --until subtrees`), shard I chooses in its share of the
//! groups (`strata select --shard I/N`: `Subtrees::of_shard`), each as
//! the select stage would, into its part's `work/picks.parquet`. The reduce's select stage then
//! takes each shard's picks when they are current, and chooses in that shard's groups itself
//! when they are not. A task holds one group's vectors; the reduce holds none of them.

use crate::subtrees::{choose_in, Subtrees};
use crate::{SelectConfig, SelectError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use strata_core::manifest::Manifest;
use strata_core::parquet_io::{self, RowWriter};
use strata_core::records::PickRecord;
use strata_core::rundir::{WORK_PICKS, WORK_SUBTREES, WORK_SUBTREE_PASSAGES};
use strata_core::shard::Parts;
use strata_core::stage::{is_recorded, FingerprintedOnce};
use strata_core::summary::SelectSummary;
use strata_core::{RunDir, Shard, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

/// One shard's choice in its share of the run's groups of passages, run in the shard's run
/// directory; it reads the run's `work/subtrees.json` and `work/subtree_passages.parquet`.
pub struct PartSelectStage {
    pub config: SelectConfig,
    pub seed: u64,
    pub shard: Shard,
    subtrees: PathBuf,
    passages: PathBuf,
    /// The hashes the subtrees stage recorded for both files.
    recorded: BTreeMap<String, String>,
    /// The run's corpus tokens, for the part's figures.
    corpus_tokens: u64,
}

impl PartSelectStage {
    /// Shard `shard`'s part of the selection of `run`, whose `manifest` records the subtrees stage.
    pub fn new(run: &RunDir, manifest: &Manifest, config: SelectConfig, seed: u64, shard: Shard) -> Result<Self, StageError> {
        let Some(record) = manifest.stages.subtrees.as_ref() else {
            return Err(format!(
                "`{}` is not written yet: run the reduce up to the subtrees first (`strata run --shards {} --until subtrees`)",
                run.path(WORK_SUBTREES).display(),
                shard.count
            )
            .into());
        };
        let (subtrees, passages) = (run.path(WORK_SUBTREES), run.path(WORK_SUBTREE_PASSAGES));
        let corpus_tokens = manifest.stages.chunk.as_ref().map_or(0, |c| c.summary.corpus_tokens);
        Ok(Self { config, seed, shard, subtrees, passages, recorded: record.run.outputs.clone(), corpus_tokens })
    }
}

impl Stage for PartSelectStage {
    fn name(&self) -> StageName {
        StageName::Select
    }

    fn reads(&self) -> Vec<&'static str> {
        // The run's files, not the part's: their hashes are in the fingerprint.
        Vec::new()
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![WORK_PICKS]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        let c = &self.config;
        Ok(json!({"subtrees": self.recorded, "max_clients": c.max_clients, "max_similarity": c.max_similarity, "seed": self.seed}))
    }

    /// The part's figures are of its groups: no random draw (the reduce draws it).
    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate().map_err(SelectError::Config)?;
        let listing = Subtrees::read(&self.subtrees)?;
        listing.check_settings(&self.config, &self.subtrees)?;
        let groups = listing.of_shard(self.shard);
        ctx.progress.start("select", Some(groups.len() as u64));
        let mut picks = RowWriter::create(&ctx.output(WORK_PICKS)?, &PickRecord::fields(), &[])?;
        let (mut leaves, mut covered) = (BTreeSet::new(), BTreeSet::new());
        let mut summary = SelectSummary {
            corpus_tokens: self.corpus_tokens,
            cost_floor_tokens: listing.cost_floor_tokens as u64,
            subtrees: listing.by_subtree().then_some(groups.len() as u64),
            ..Default::default()
        };
        for group in groups {
            for choice in choose_in(&self.passages, &listing, group, &self.config, self.seed)? {
                picks.push(PickRecord { passage: choice.passage, selected: choice.selected })?;
                leaves.insert(choice.leaf);
                if choice.selected {
                    (summary.selected_passages, summary.selected_tokens) =
                        (summary.selected_passages + 1, summary.selected_tokens + choice.n_tokens as u64);
                    covered.insert(choice.leaf);
                }
            }
            summary.budget_tokens += group.budget_tokens;
            ctx.progress.advance(1);
        }
        (summary.leaves, summary.leaves_covered) = (leaves.len() as u64, covered.len() as u64);
        let rows = picks.rows();
        picks.close()?;
        ctx.progress.finish();
        Ok(StageStats { rows_in: rows, rows_out: rows, summary: StageSummary::Select(summary) })
    }
}

/// What each group's choice took, shard by shard: the shard's picks when it has made them from
/// this run's groups (its file must still hold what it wrote: a changed or damaged one fails,
/// naming the shard), else the choice made here. Returns the passages taken, ascending (what
/// the selection holds, not a flag per passage), and how many shards' picks were used (shards
/// without a group not counted).
pub(crate) fn choose_by_group(
    ctx: &StageContext,
    listing: &Subtrees,
    parts: Option<&Parts>,
    config: &SelectConfig,
    seed: u64,
) -> Result<(Vec<u64>, u64), StageError> {
    let passages = ctx.run.path(WORK_SUBTREE_PASSAGES);
    let mut chosen = Vec::new();
    let mut mark = |passage: u64, selected: bool| {
        if selected {
            chosen.push(passage);
        }
    };
    // Per shard, whether it has chosen in its groups of these subtrees with these settings (the
    // part stage's fingerprint is the same for every shard); one "shard" without parts.
    let current: Vec<bool> = match parts {
        None => vec![false],
        Some(parts) => {
            let stage = PartSelectStage::new(ctx.run, ctx.manifest, config.clone(), seed, Shard::new(0, parts.dirs.len() as u32)?)?;
            let stage = FingerprintedOnce::new(&stage)?;
            parts.each().map(|(_, dir, manifest)| manifest.is_some_and(|m| is_recorded(dir, m, &stage).unwrap_or(false))).collect()
        }
    };
    let mut picked_parts = 0;
    for (shard, current) in Shard::all(current.len() as u32).zip(current) {
        let groups = listing.of_shard(shard);
        if groups.is_empty() {
            continue;
        }
        if parts.is_some() && !current {
            tracing::info!("shard {shard} has not chosen in its subtrees (`strata select --shard {shard}`): choosing in them here");
        }
        if let Some(parts) = parts.filter(|_| current) {
            parts.verify(shard.index as usize, StageName::Select)?;
            let path = parts.dirs[shard.index as usize].path(WORK_PICKS);
            let expected: u64 = groups.iter().map(|g| g.passages).sum();
            if parquet_io::num_rows(&path)? != expected {
                return Err(format!("`{}` does not hold one pick for each of its groups' {expected} passages", path.display()).into());
            }
            for pick in parquet_io::rows::<PickRecord>(&path, &[])? {
                let pick = pick?;
                mark(pick.passage, pick.selected);
            }
            picked_parts += 1;
            continue;
        }
        for group in groups {
            for choice in choose_in(&passages, listing, group, config, seed)? {
                mark(choice.passage, choice.selected);
            }
        }
    }
    chosen.sort_unstable();
    if let Some(twice) = chosen.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("`{}`: passage {} is in two groups", passages.display(), twice[0]).into());
    }
    Ok((chosen, picked_parts))
}
