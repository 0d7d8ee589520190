//! The subtrees stage: what the selection needs, grouped so that it can choose in parts. It
//! fixes the budget and the cost floor over the whole corpus, then groups the passages by the
//! level-1 subtree of the taxonomy they are in (one group of every passage when there are at
//! most `subtree_above`), each group with the budget times its share of the passages' tokens:
//! `work/subtrees.json` lists the groups, `work/subtree_passages.parquet` holds their
//! passages' vectors, a group's rows one after another. The select stage chooses in each group
//! as in a whole corpus, holding one group's vectors; in a sharded run each shard can choose in
//! its share of the groups first (`strata select --shard I/N`, `parts`).

use crate::facility::{cost_floor, select, Budget, Candidate};
use crate::{corpus_tokens, read_passages, SelectConfig, SelectError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use strata_core::parquet_io::{self, RowWriter};
use strata_core::records::{SubtreePassage, TaxonomyNode};
use strata_core::rundir::{
    EMBEDDINGS, TAXONOMY, WORK_CHUNKS, WORK_PASSAGES, WORK_PASSAGE_ASSIGNMENTS, WORK_SUBTREES, WORK_SUBTREE_PASSAGES,
};
use strata_core::summary::SubtreesSummary;
use strata_core::vectors::Spill;
use strata_core::{Shard, Stage, StageContext, StageError, StageName, StageStats, StageSummary, TaxonomyTree};

/// Passages read back from a group's scratch file at a time.
const SPILL_BATCH: usize = 1 << 12;

/// The subtrees stage.
pub struct SubtreesStage {
    pub config: SelectConfig,
}

/// What `work/subtrees.json` holds: the budget and cost floor of the whole corpus, and the
/// groups the selection chooses in, in the order of their rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subtrees {
    /// The select settings it was made with (`SubtreesStage::settings`): a stage choosing with
    /// other ones must not use it.
    pub settings: Value,
    pub budget_tokens: u64,
    pub cost_floor_tokens: u32,
    pub groups: Vec<Group>,
}

/// A group of passages chosen in together: a level-1 subtree (by its node), or every passage
/// (no node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub node_id: Option<u32>,
    /// Its rows of `work/subtree_passages.parquet`: `first_row .. first_row + passages`.
    pub first_row: u64,
    pub passages: u64,
    /// The budget times the group's share of the passages' tokens (rounded down).
    pub budget_tokens: u64,
}

impl Subtrees {
    pub fn read(path: &Path) -> Result<Self, StageError> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("failed to read `{}`: {e}", path.display()))?;
        Ok(serde_json::from_str(&text).map_err(|e| format!("`{}` is not a subtrees file: {e}", path.display()))?)
    }

    /// Whether the groups are subtrees (the passages outnumber `subtree_above`), not all in one.
    pub fn by_subtree(&self) -> bool {
        self.groups.iter().any(|g| g.node_id.is_some())
    }

    /// An error naming `path` (this listing's file) unless it was made with `config`'s settings.
    pub fn check_settings(&self, config: &SelectConfig, path: &Path) -> Result<(), StageError> {
        match self.settings == SubtreesStage::settings(config) {
            true => Ok(()),
            false => Err(format!(
                "`{}` was made with other select settings ({}); run `strata subtrees` (or `strata run`) with these first",
                path.display(),
                self.settings
            )
            .into()),
        }
    }

    /// The groups shard `shard` chooses in, in order: those whose middle row falls in the
    /// shard's share of the rows (`Shard::range`), so that shards get about equal numbers of
    /// passages rather than of groups (a group's middle rows increase with the group).
    pub fn of_shard(&self, shard: Shard) -> &[Group] {
        let total = self.groups.last().map_or(0, |g| g.first_row + g.passages);
        let rows = shard.range(total);
        let middle = |g: &Group| g.first_row + g.passages / 2;
        let start = self.groups.partition_point(|g| middle(g) < rows.start);
        let end = self.groups.partition_point(|g| middle(g) < rows.end);
        &self.groups[start..end]
    }
}

impl SubtreesStage {
    /// The settings the stage's files depend on; how the choice runs (max_clients,
    /// max_similarity) is the select stage's.
    pub fn settings(c: &SelectConfig) -> Value {
        json!({
            "budget": c.budget, "budget_tokens": c.budget_tokens, "min_passage_tokens": c.min_passage_tokens,
            "cost_floor": c.cost_floor, "subtree_above": c.subtree_above,
        })
    }
}

impl Stage for SubtreesStage {
    fn name(&self) -> StageName {
        StageName::Subtrees
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, WORK_PASSAGES, EMBEDDINGS, WORK_PASSAGE_ASSIGNMENTS, TAXONOMY]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![WORK_SUBTREES, WORK_SUBTREE_PASSAGES]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        // `listing` 2: `subtrees.json` records its settings (files made before are redone).
        Ok(json!({"settings": Self::settings(&self.config), "listing": 2}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate().map_err(SelectError::Config)?;
        let corpus_tokens = corpus_tokens(ctx)?;
        let units = read_passages(ctx, self.config.min_passage_tokens)?;
        let candidates: Vec<Candidate> = (0..units.passages.len()).map(|p| units.candidate(p, &[])).collect();
        let floor = cost_floor(&candidates, self.config.cost_floor);
        let budget = self.config.budget_tokens(corpus_tokens);
        let by_subtree = units.passages.len() > self.config.subtree_above;
        let level1 = by_subtree.then(|| level1_of(&ctx.run.path(TAXONOMY))).transpose()?;
        let group_of = |p: usize| level1.as_ref().map(|level1| level1.get(&units.leaf[p]).copied().unwrap_or(units.leaf[p]));
        let mut members: BTreeMap<Option<u32>, Vec<usize>> = BTreeMap::new();
        (0..units.passages.len()).for_each(|p| members.entry(group_of(p)).or_default().push(p));

        ctx.progress.start("subtrees", Some(units.passages.len() as u64));
        let mut spills: HashMap<Option<u32>, Spill> = HashMap::new();
        for &group in members.keys() {
            spills.insert(group, Spill::new(ctx.scratch_file()?));
        }
        let mut dim = 0;
        let (chunks, embeddings) = (ctx.run.path(WORK_CHUNKS), ctx.run.path(EMBEDDINGS));
        units.passages.for_each_vector(&chunks, &embeddings, |p, v| -> Result<(), StageError> {
            dim = v.len();
            spills.get_mut(&group_of(p)).ok_or("a passage of no group")?.write(p, units.leaf[p], v)?;
            ctx.progress.advance(1);
            Ok(())
        })?;

        let total: u64 = units.passages.n_tokens.iter().map(|&n| n as u64).sum();
        let mut rows = RowWriter::create(&ctx.output(WORK_SUBTREE_PASSAGES)?, &SubtreePassage::fields(dim), &[])?;
        let mut groups = Vec::with_capacity(members.len());
        for (node_id, passages) in members {
            let tokens: u64 = passages.iter().map(|&p| units.passages.n_tokens[p] as u64).sum();
            let share = (budget as u128 * tokens as u128 / total.max(1) as u128) as u64;
            groups.push(Group { node_id, first_row: rows.rows(), passages: passages.len() as u64, budget_tokens: share });
            let spill = spills.remove(&node_id).ok_or("a group without its scratch file")?;
            spill.read_back(SPILL_BATCH, |batch| -> Result<(), StageError> {
                for (p, leaf, vector) in batch {
                    let c = &candidates[p];
                    rows.push(SubtreePassage { passage: p as u64, leaf, n_tokens: c.n_tokens, eligible: c.eligible, vector })?;
                }
                Ok(())
            })?;
        }
        rows.close()?;
        let listing = Subtrees { settings: Self::settings(&self.config), budget_tokens: budget, cost_floor_tokens: floor, groups };
        let text = serde_json::to_string_pretty(&listing).map_err(|e| e.to_string())?;
        std::fs::write(ctx.output(WORK_SUBTREES)?, text)?;
        ctx.progress.finish();

        let summary = SubtreesSummary {
            passages: units.passages.len() as u64,
            budget_tokens: budget,
            cost_floor_tokens: floor as u64,
            subtrees: listing.by_subtree().then_some(listing.groups.len() as u64),
        };
        let stats = StageStats {
            rows_in: units.passages.len() as u64,
            rows_out: units.passages.len() as u64,
            summary: StageSummary::Subtrees(summary),
        };
        Ok(stats)
    }
}

/// Per leaf, its ancestor at level 1 (itself at level 1; the root for a tree of one node).
fn level1_of(taxonomy: &Path) -> Result<HashMap<u32, u32>, StageError> {
    let tree = TaxonomyTree::new(parquet_io::read_rows::<TaxonomyNode>(taxonomy)?)?;
    Ok(tree.leaves().map(|leaf| (leaf, *tree.shape().lineage(leaf).get(1).unwrap_or(&leaf))).collect())
}

/// A passage of a group with whether the group's choice took it.
pub struct Choice {
    /// The passage's position in the run.
    pub passage: u64,
    pub selected: bool,
    pub leaf: u32,
    pub n_tokens: u32,
}

/// The choice in `group`, from its rows of `passages` (`work/subtree_passages.parquet`), in
/// their order. Holds the group's vectors.
pub fn choose_in(passages: &Path, listing: &Subtrees, group: &Group, config: &SelectConfig, seed: u64) -> Result<Vec<Choice>, StageError> {
    let rows = group.first_row..group.first_row + group.passages;
    let mut members: Vec<SubtreePassage> = Vec::with_capacity(group.passages as usize);
    for batch in parquet_io::batches_in::<SubtreePassage>(passages, &[], rows)? {
        members.append(&mut batch?);
    }
    let candidates: Vec<Candidate> =
        members.iter().map(|m| Candidate { leaf: m.leaf, n_tokens: m.n_tokens, eligible: m.eligible, vector: &m.vector }).collect();
    let budget = Budget { tokens: group.budget_tokens };
    let taken = select(&candidates, budget, listing.cost_floor_tokens, config.max_clients, config.max_similarity, seed);
    Ok(members.iter().zip(taken).map(|(m, selected)| Choice { passage: m.passage, selected, leaf: m.leaf, n_tokens: m.n_tokens }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(sizes: &[u64]) -> Subtrees {
        let mut first_row = 0;
        let groups = sizes
            .iter()
            .enumerate()
            .map(|(i, &passages)| {
                let group = Group { node_id: Some(i as u32), first_row, passages, budget_tokens: 0 };
                first_row += passages;
                group
            })
            .collect();
        Subtrees { settings: Value::Null, budget_tokens: 0, cost_floor_tokens: 0, groups }
    }

    fn nodes_by_shard(listing: &Subtrees, count: u32) -> Vec<Vec<u32>> {
        (0..count)
            .map(|i| listing.of_shard(Shard::new(i, count).expect("a shard below the count")).iter().filter_map(|g| g.node_id).collect())
            .collect()
    }

    #[test]
    fn shards_share_the_groups_by_passages_each_group_once() {
        // Two subtrees over four shards: each where its middle row falls.
        assert_eq!(nodes_by_shard(&listing(&[60, 40]), 4), [vec![], vec![0], vec![], vec![1]]);
        // Two over two: one each, however unequal.
        assert_eq!(nodes_by_shard(&listing(&[10, 90]), 2), [vec![0], vec![1]]);
        // One large subtree and many small: the large one alone, the small ones shared.
        let many = listing(&[50, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]);
        assert_eq!(nodes_by_shard(&many, 4), [vec![], vec![0], vec![1, 2, 3, 4, 5], vec![6, 7, 8, 9, 10]]);
        for count in 1..=12 {
            let all: Vec<u32> = nodes_by_shard(&many, count).concat();
            assert_eq!(all, (0..11).collect::<Vec<_>>(), "{count} shards");
        }
    }
}
