//! Budgeted facility location. The objective is, over every leaf, the sum over the leaf's
//! chunks of their best cosine to a selected chunk of the same leaf; greedy by gain per
//! token is the classic approximation for a knapsack-constrained submodular objective, and
//! lazy evaluation keeps it fast (gains only shrink as the selection grows).

use std::collections::{BTreeMap, BinaryHeap};
use strata_core::vectors::{dot, sample_indices, shuffle};

/// A chunk as selection sees it.
#[derive(Clone, Copy)]
pub struct Candidate<'a> {
    pub leaf: u32,
    pub n_tokens: u32,
    /// Not a near-duplicate and not under the minimum size.
    pub eligible: bool,
    pub vector: &'a [f32],
}

#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub tokens: u64,
}

/// One leaf's facility-location state: the chunks it is measured on and their best
/// similarity to the selection so far.
struct Leaf {
    clients: Vec<usize>,
    /// Each client stands for this many chunks of the leaf (sampling keeps shares by size).
    weight: f32,
    best: Vec<f32>,
}

impl Leaf {
    fn gain(&self, candidates: &[Candidate], j: usize) -> f32 {
        let v = candidates[j].vector;
        let sum: f32 = self.clients.iter().zip(&self.best).map(|(&c, &b)| (dot(candidates[c].vector, v) - b).max(0.0)).sum();
        sum * self.weight
    }

    fn take(&mut self, candidates: &[Candidate], j: usize) {
        let v = candidates[j].vector;
        for (&c, b) in self.clients.iter().zip(self.best.iter_mut()) {
            *b = b.max(dot(candidates[c].vector, v));
        }
    }
}

/// Uniformly random eligible candidates (a seeded shuffle) taken while they fit in `budget`; one
/// that does not fit is passed over, so the budget is met within the smallest candidate.
pub fn random_draw(candidates: &[Candidate], budget: Budget, seed: u64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..candidates.len()).filter(|&i| candidates[i].eligible).collect();
    shuffle(&mut order, seed ^ RANDOM_DRAW);
    let mut chosen = vec![false; candidates.len()];
    let mut left = budget.tokens;
    for i in order {
        let n = candidates[i].n_tokens as u64;
        if n <= left {
            chosen[i] = true;
            left -= n;
        }
    }
    chosen
}

/// Mixed into the seed of the random draw, so it does not share a stream with the samples
/// facility location draws.
const RANDOM_DRAW: u64 = 0x7261_6e64_6f6d;

/// Chooses chunks under `budget`: first one per leaf (largest leaves first, the chunk with
/// the highest gain per cost that fits), then lazy greedy by gain per cost over all leaves.
/// A chunk's cost is its tokens, but at least `floor` tokens: gain per token alone would
/// favour the shortest chunks. No chunk is taken whose cosine to a chunk already taken reaches
/// `max_similarity`.
pub fn select(candidates: &[Candidate], budget: Budget, floor: u32, max_clients: usize, max_similarity: f32, seed: u64) -> Vec<bool> {
    let mut members: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        members.entry(c.leaf).or_default().push(i);
    }
    let mut leaves: BTreeMap<u32, Leaf> = members
        .iter()
        .map(|(&id, m)| {
            let clients: Vec<usize> = sample_indices(m.len(), max_clients, seed ^ id as u64).into_iter().map(|i| m[i]).collect();
            let weight = m.len() as f32 / clients.len().max(1) as f32;
            let best = vec![0.0; clients.len()];
            (id, Leaf { clients, weight, best })
        })
        .collect();
    let cost = |i: usize| candidates[i].n_tokens.max(floor) as f32;
    let mut state = State { chosen: vec![false; candidates.len()], taken: Vec::new(), left: budget.tokens, max_similarity };

    // Coverage first: every leaf gets a chunk while the budget allows.
    let mut by_size: Vec<(&u32, &Vec<usize>)> = members.iter().collect();
    by_size.sort_by_key(|(id, m)| (std::cmp::Reverse(m.iter().map(|&i| candidates[i].n_tokens as u64).sum::<u64>()), **id));
    for (id, m) in by_size {
        let leaf = &leaves[id];
        let mut ranked: Vec<(f32, usize)> =
            m.iter().copied().filter(|&i| state.fits(candidates, i)).map(|i| (leaf.gain(candidates, i) / cost(i), i)).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some(&(_, i)) = ranked.iter().find(|(_, i)| !state.near_duplicate(candidates, *i)) {
            state.take(&mut leaves, candidates, i);
        }
    }

    // Then the rest of the budget, by gain per cost.
    let mut heap: BinaryHeap<Entry> = candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| c.eligible && !state.chosen[*i])
        .map(|(i, c)| Entry { score: leaves[&c.leaf].gain(candidates, i) / cost(i), index: i })
        .collect();
    while let Some(top) = heap.pop() {
        if !state.fits(candidates, top.index) {
            continue;
        }
        let score = leaves[&candidates[top.index].leaf].gain(candidates, top.index) / cost(top.index);
        if score <= 0.0 {
            continue;
        }
        if heap.peek().is_some_and(|next| score < next.score) {
            heap.push(Entry { score, index: top.index });
            continue;
        }
        if !state.near_duplicate(candidates, top.index) {
            state.take(&mut leaves, candidates, top.index);
        }
    }
    state.chosen
}

/// `share` of the median size of the eligible chunks (at least 1 token): below it, being
/// shorter no longer buys a chunk a better gain per cost, so the selection is not won by crumbs.
pub fn cost_floor(candidates: &[Candidate], share: f64) -> u32 {
    floor_of_sizes(candidates.iter().filter(|c| c.eligible).map(|c| c.n_tokens), share)
}

/// [`cost_floor`] from the eligible chunks' sizes alone.
pub fn floor_of_sizes(eligible_sizes: impl Iterator<Item = u32>, share: f64) -> u32 {
    let mut sizes: Vec<u32> = eligible_sizes.collect();
    sizes.sort_unstable();
    sizes.get(sizes.len() / 2).map_or(1, |&m| ((m as f64 * share) as u32).max(1))
}

/// The selection so far.
struct State {
    chosen: Vec<bool>,
    /// Chosen chunks in the order taken.
    taken: Vec<usize>,
    left: u64,
    max_similarity: f32,
}

impl State {
    fn fits(&self, candidates: &[Candidate], i: usize) -> bool {
        candidates[i].eligible && !self.chosen[i] && candidates[i].n_tokens as u64 <= self.left
    }

    fn near_duplicate(&self, candidates: &[Candidate], i: usize) -> bool {
        self.taken.iter().any(|&j| dot(candidates[i].vector, candidates[j].vector) >= self.max_similarity)
    }

    fn take(&mut self, leaves: &mut BTreeMap<u32, Leaf>, candidates: &[Candidate], i: usize) {
        self.chosen[i] = true;
        self.taken.push(i);
        self.left -= candidates[i].n_tokens as u64;
        if let Some(leaf) = leaves.get_mut(&candidates[i].leaf) {
            leaf.take(candidates, i);
        }
    }
}

/// Max-heap entry; ties go to the earlier chunk so the result is deterministic.
struct Entry {
    score: f32,
    index: usize,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&other.score).then(other.index.cmp(&self.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(x: f32, y: f32) -> Vec<f32> {
        let n = (x * x + y * y).sqrt();
        vec![x / n, y / n]
    }

    #[test]
    fn covers_every_leaf_then_respects_the_budget() {
        let vecs = [unit(1.0, 0.0), unit(0.9, 0.1), unit(0.0, 1.0), unit(0.1, 0.9), unit(0.5, 0.5)];
        let leaves = [0, 0, 1, 1, 1];
        let cands: Vec<Candidate> =
            vecs.iter().zip(leaves).map(|(v, leaf)| Candidate { leaf, n_tokens: 50, eligible: true, vector: v }).collect();
        let chosen = select(&cands, Budget { tokens: 100 }, 1, 100, 0.95, 7);
        assert_eq!(chosen.iter().filter(|&&c| c).count(), 2);
        assert!(chosen[0] || chosen[1]);
        assert!(chosen[2] || chosen[3] || chosen[4]);
    }

    #[test]
    fn never_takes_ineligible_chunks_and_never_exceeds_budget() {
        let vecs = [unit(1.0, 0.0), unit(0.0, 1.0), unit(1.0, 1.0)];
        let cands: Vec<Candidate> =
            vecs.iter().enumerate().map(|(i, v)| Candidate { leaf: 0, n_tokens: 40 + i as u32, eligible: i != 0, vector: v }).collect();
        let chosen = select(&cands, Budget { tokens: 85 }, 1, 100, 0.95, 1);
        assert!(!chosen[0]);
        let used: u32 = cands.iter().zip(&chosen).filter(|(_, &s)| s).map(|(c, _)| c.n_tokens).sum();
        assert!(used <= 85);
    }

    #[test]
    fn never_takes_two_near_duplicates() {
        // Two leaves whose best chunks point the same way: only one of them may be taken.
        let vecs = [unit(1.0, 0.0), unit(1.0, 0.01), unit(0.0, 1.0), unit(0.7, 0.7)];
        let cands: Vec<Candidate> =
            vecs.iter().zip([0, 1, 1, 0]).map(|(v, leaf)| Candidate { leaf, n_tokens: 50, eligible: true, vector: v }).collect();
        let chosen = select(&cands, Budget { tokens: 1000 }, 1, 100, 0.95, 3);
        assert!(!(chosen[0] && chosen[1]), "{chosen:?}");
        assert!(chosen[2] && chosen[3]);
    }

    #[test]
    fn short_chunks_cost_at_least_a_share_of_the_median() {
        let v = unit(1.0, 0.0);
        let cands: Vec<Candidate> =
            [40, 100, 120, 200, 300].iter().map(|&n| Candidate { leaf: 0, n_tokens: n, eligible: true, vector: &v }).collect();
        assert_eq!(cost_floor(&cands, 0.5), 60);
        assert_eq!(cost_floor(&cands, 1.0), 120);
        // With no eligible chunk there is no median: the floor is 1 token.
        let none: Vec<Candidate> = cands.iter().map(|c| Candidate { eligible: false, ..*c }).collect();
        assert_eq!(cost_floor(&none, 0.5), 1);
    }
}
