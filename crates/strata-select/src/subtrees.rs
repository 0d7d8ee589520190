//! The subtrees stage: what the selection needs, grouped so that it can choose in parts. It
//! fixes the budget and the cost floor over the whole corpus, then groups the passages by
//! subtree of the taxonomy, each group with its share of the budget (what covering its leaves
//! costs, then the rest by its share of the passages' tokens; one group of every passage when
//! there are at most `subtree_above`): the level-1
//! subtrees that hold at most `subtree_above` passages, the larger ones split into their
//! children, and so on down to leaves (a leaf is never split), so that a group holds at most
//! `subtree_above` passages unless it is one larger leaf. `work/subtrees.json` lists the
//! groups, `work/subtree_passages.parquet` holds their passages' vectors, a group's rows one
//! after another. The select stage chooses in each group as in a whole corpus, holding one
//! group's vectors; in a sharded run each shard can choose in its share of the groups first
//! (`strata select --shard I/N`, `parts`).

use crate::facility::{select, Budget, Candidate, Sizes};
use crate::{corpus_tokens, placed_passages, Placed, SelectConfig, SelectError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use strata_core::parquet_io::{self, RowWriter};
use strata_core::records::{SubtreePassage, TaxonomyNode};
use strata_core::rundir::{
    EMBEDDINGS, TAXONOMY, WORK_CHUNKS, WORK_PASSAGES, WORK_PASSAGE_ASSIGNMENTS, WORK_SUBTREES, WORK_SUBTREE_PASSAGES,
};
use strata_core::summary::SubtreesSummary;
use strata_core::vectors::{Spill, Spilled};
use strata_core::{PassagesFile, Shape, Shard, Stage, StageContext, StageError, StageName, StageStats, StageSummary, TaxonomyTree};

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

/// A group of passages chosen in together: a subtree (by its node), or every passage (no node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub node_id: Option<u32>,
    /// Its rows of `work/subtree_passages.parquet`: `first_row .. first_row + passages`.
    pub first_row: u64,
    pub passages: u64,
    /// The group's share of the budget (`group_budgets`).
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
        // `listing` 2: `subtrees.json` records its settings; 3: a level-1 subtree over
        // `subtree_above` passages is split (files made before are redone).
        Ok(json!({"settings": Self::settings(&self.config), "listing": 3}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate().map_err(SelectError::Config)?;
        let corpus_tokens = corpus_tokens(ctx)?;
        let min_tokens = self.config.min_passage_tokens;
        // A first pass over the passages' sizes and leaves: each leaf's needs, the eligible sizes.
        let (mut leaves, mut sizes, mut n) = (BTreeMap::<u32, GroupNeeds>::new(), Sizes::default(), 0);
        for placed in placed_passages(ctx, min_tokens)? {
            let placed = placed?;
            leaves.entry(placed.leaf).or_default().add(&placed);
            if placed.eligible {
                sizes.add(placed.n_tokens);
            }
            n += 1;
        }
        let floor = sizes.floor(self.config.cost_floor);
        let budget = self.config.budget_tokens(corpus_tokens);
        let by_subtree = n > self.config.subtree_above;
        let in_leaf = leaves.iter().map(|(&leaf, needs)| (leaf, needs.passages));
        let subtree_of = by_subtree.then(|| subtrees_of_leaves(&ctx.run.path(TAXONOMY), in_leaf, self.config.subtree_above)).transpose()?;
        let group_of = |leaf: u32| subtree_of.as_ref().map(|of| of.get(&leaf).copied().unwrap_or(leaf));
        // Each group's figures, in group order; no list of its passages.
        let mut members: BTreeMap<Option<u32>, GroupNeeds> = BTreeMap::new();
        leaves.into_iter().for_each(|(leaf, needs)| members.entry(group_of(leaf)).or_default().merge(needs));

        ctx.progress.start("subtrees", Some(n as u64));
        let mut spills: HashMap<Option<u32>, Spill> = HashMap::new();
        for &group in members.keys() {
            spills.insert(group, Spill::new(ctx.scratch_file()?));
        }
        let mut dim = 0;
        let (chunks, embeddings) = (ctx.run.path(WORK_CHUNKS), ctx.run.path(EMBEDDINGS));
        let file = PassagesFile::new(&ctx.run.path(WORK_PASSAGES), parquet_io::num_rows(&chunks)?);
        let mut placed = placed_passages(ctx, min_tokens)?;
        file.for_each_vector(&chunks, &embeddings, |p, v| -> Result<(), StageError> {
            dim = v.len();
            let passage = placed.next().ok_or("fewer passages placed than the passages file holds")??;
            let spill = spills.get_mut(&group_of(passage.leaf)).ok_or("a passage of no group")?;
            spill.write(p, passage.leaf, tag(passage.n_tokens, passage.eligible), v)?;
            ctx.progress.advance(1);
            Ok(())
        })?;

        let budgets = group_budgets(budget, &members.values().collect::<Vec<_>>(), floor);
        let mut rows = RowWriter::create(&ctx.output(WORK_SUBTREE_PASSAGES)?, &SubtreePassage::fields(dim), &[])?;
        let mut groups = Vec::with_capacity(members.len());
        for ((node_id, needs), budget_tokens) in members.into_iter().zip(budgets) {
            groups.push(Group { node_id, first_row: rows.rows(), passages: needs.passages, budget_tokens });
            let spill = spills.remove(&node_id).ok_or("a group without its scratch file")?;
            spill.read_back(SPILL_BATCH, |batch| -> Result<(), StageError> {
                for Spilled { row, leaf, tag, vector } in batch {
                    let (n_tokens, eligible) = untag(tag);
                    rows.push(SubtreePassage { passage: row as u64, leaf, n_tokens, eligible, vector })?;
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
            passages: n as u64,
            budget_tokens: budget,
            cost_floor_tokens: floor as u64,
            subtrees: listing.by_subtree().then_some(listing.groups.len() as u64),
        };
        Ok(StageStats { rows_in: n as u64, rows_out: n as u64, summary: StageSummary::Subtrees(summary) })
    }
}

/// A spilled passage's tokens and eligibility, kept with its vector.
fn tag(n_tokens: u32, eligible: bool) -> u64 {
    (n_tokens as u64) << 1 | eligible as u64
}

fn untag(tag: u64) -> (u32, bool) {
    ((tag >> 1) as u32, tag & 1 == 1)
}

/// What a group's budget is shared by: its passages' tokens, and what covering its leaves
/// costs (the cost floor for each leaf with an eligible passage: the choice covers every leaf
/// first, ranking passages by gain per cost, and a passage's cost is never under the floor).
/// Summed per leaf first, then per group.
#[derive(Default)]
struct GroupNeeds {
    passages: u64,
    tokens: u64,
    /// The leaves with an eligible passage.
    leaves: BTreeSet<u32>,
}

impl GroupNeeds {
    fn add(&mut self, passage: &Placed) {
        (self.passages, self.tokens) = (self.passages + 1, self.tokens + passage.n_tokens as u64);
        if passage.eligible {
            self.leaves.insert(passage.leaf);
        }
    }

    fn merge(&mut self, other: GroupNeeds) {
        (self.passages, self.tokens) = (self.passages + other.passages, self.tokens + other.tokens);
        self.leaves.extend(other.leaves);
    }

    fn cover(&self, floor: u32) -> u64 {
        self.leaves.len() as u64 * floor as u64
    }
}

/// Each group's share of `budget`: first what covering its leaves costs at the cost `floor`,
/// then the rest by its share of the passages' tokens; when the budget is short of covering
/// every leaf, by its share of the cover. One group gets the whole budget. Shares are rounded
/// down.
fn group_budgets(budget: u64, needs: &[&GroupNeeds], floor: u32) -> Vec<u64> {
    let share = |of: u64, part: u64, whole: u64| (of as u128 * part as u128 / whole.max(1) as u128) as u64;
    let (cover, tokens): (u64, u64) = (needs.iter().map(|n| n.cover(floor)).sum(), needs.iter().map(|n| n.tokens).sum());
    match budget >= cover {
        true => needs.iter().map(|n| n.cover(floor) + share(budget - cover, n.tokens, tokens)).collect(),
        false => needs.iter().map(|n| share(budget, n.cover(floor), cover)).collect(),
    }
}

/// Per leaf, the subtree its passages are chosen in: the highest node of its lineage below the
/// root whose subtree holds at most `bound` passages (`in_leaf`: each leaf with its passages),
/// else the leaf itself (the root for a tree of one node).
fn subtrees_of_leaves(taxonomy: &Path, in_leaf: impl Iterator<Item = (u32, u64)>, bound: usize) -> Result<HashMap<u32, u32>, StageError> {
    let tree = TaxonomyTree::new(parquet_io::read_rows::<TaxonomyNode>(taxonomy)?)?;
    let mut passages = vec![0u64; tree.nodes().len()];
    for (leaf, count) in in_leaf {
        *passages.get_mut(leaf as usize).ok_or_else(|| format!("leaf {leaf} is not a node of `{}`", taxonomy.display()))? += count;
    }
    Ok(subtrees_within(tree.shape(), &tree.sum_up(&passages), bound as u64))
}

/// Per leaf of `shape`, the highest node below the root on its lineage with at most `bound` of
/// `sizes` (each node's), else the leaf itself.
fn subtrees_within(shape: &Shape, sizes: &[u64], bound: u64) -> HashMap<u32, u32> {
    let within = |lineage: Vec<u32>| lineage.iter().skip(1).find(|&&a| sizes[a as usize] <= bound).copied();
    shape.leaves().map(|leaf| (leaf, within(shape.lineage(leaf)).unwrap_or(leaf))).collect()
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
    fn groups_are_the_largest_subtrees_within_the_bound_down_to_leaves() {
        // Root 0 → 1 (leaves 2, 3), 4 (leaves 5, 6 → leaves 7, 8), 9 (a leaf).
        let shape = Shape::from_parents(vec![None, Some(0), Some(1), Some(1), Some(0), Some(4), Some(4), Some(6), Some(6), Some(0)])
            .expect("a tree");
        let mut leaf_sizes = [0, 0, 3, 2, 0, 1, 0, 4, 5, 12];
        let sizes = |leaves: &[u64]| {
            let mut sums = leaves.to_vec();
            (1..sums.len()).rev().for_each(|id| sums[shape.parent(id as u32).expect("a parent") as usize] += sums[id]);
            sums
        };
        let groups = subtrees_within(&shape, &sizes(&leaf_sizes), 5);
        // 1 (5 passages) is one group; 4 (10) splits into 5 and 6 (9), which splits into its
        // leaves 7 and 8; leaf 9 (12) is over the bound but a leaf.
        let expected = [(2, 1), (3, 1), (5, 5), (7, 7), (8, 8), (9, 9)];
        assert_eq!(groups, expected.into_iter().collect::<HashMap<u32, u32>>());
        // Within the bound, level-1 subtrees as before.
        leaf_sizes[9] = 1;
        let groups = subtrees_within(&shape, &sizes(&leaf_sizes), 10);
        assert_eq!(groups, [(2, 1), (3, 1), (5, 4), (7, 4), (8, 4), (9, 9)].into_iter().collect::<HashMap<u32, u32>>());
    }

    #[test]
    fn groups_first_get_what_covering_their_leaves_costs_then_a_share_of_the_rest() {
        // (tokens, leaves with an eligible passage) of each group; a cost floor of 100 tokens.
        let needs = |list: &[(u64, u32)]| -> Vec<GroupNeeds> {
            list.iter().map(|&(tokens, leaves)| GroupNeeds { passages: 0, tokens, leaves: (0..leaves).collect() }).collect()
        };
        let budgets = |budget: u64, list: &[(u64, u32)]| group_budgets(budget, &needs(list).iter().collect::<Vec<_>>(), 100);
        // A small group with many leaves keeps its cover; the rest goes by tokens.
        assert_eq!(budgets(1000, &[(9000, 3), (1000, 5)]), [300 + 180, 500 + 20]);
        // Short of covering every leaf: shared by the cover.
        assert_eq!(budgets(400, &[(9000, 3), (1000, 5)]), [150, 250]);
        // One group: the whole budget either way.
        assert_eq!(budgets(1000, &[(5000, 3)]), [1000]);
        assert_eq!(budgets(100, &[(5000, 3)]), [100]);
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
