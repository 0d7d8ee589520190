//! Budgeted facility location. The objective is, over every leaf, the sum over the leaf's
//! chunks of their best cosine to a selected chunk of the same leaf; greedy by gain per
//! token is the classic approximation for a knapsack-constrained submodular objective, and
//! lazy evaluation keeps it fast (gains only shrink as the selection grows).

use std::collections::{BTreeMap, BinaryHeap};
use strata_core::vectors::{dot, sample_indices};

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

/// Uniformly random eligible candidates taken while they fit in `budget` ([`draw_at_random`]),
/// as one flag per candidate.
pub fn random_draw(candidates: &[Candidate], budget: Budget, seed: u64) -> Vec<bool> {
    let eligible =
        || Ok::<_, std::convert::Infallible>(candidates.iter().zip(0..).filter(|(c, _)| c.eligible).map(|(c, i)| Ok((i, c.n_tokens))));
    let mut chosen = vec![false; candidates.len()];
    match draw_at_random(eligible, budget, seed) {
        Ok(drawn) => drawn.into_iter().for_each(|i| chosen[i as usize] = true),
        Err(never) => match never {},
    }
    chosen
}

/// Uniformly random candidates taken while they fit in `budget`: in the order of a seeded random
/// key each, one that does not fit passed over, so the budget is met within the smallest
/// candidate. `eligible` gives the candidates that may be drawn (position, tokens), in any
/// order; it is read twice. Returns the positions drawn, ascending.
///
/// It holds the draw, not every candidate: the first pass keeps the candidates first in key
/// order whose tokens reach the budget; past them, where less than the largest candidate is left,
/// only a candidate of `s` tokens can still fit, and at most `left / s` of them, the first in
/// key order: the second pass keeps those per size.
pub fn draw_at_random<E, I>(eligible: impl Fn() -> Result<I, E>, budget: Budget, seed: u64) -> Result<Vec<u64>, E>
where
    I: Iterator<Item = Result<(u64, u32), E>>,
{
    let seed = mix(seed ^ RANDOM_DRAW);
    let key = |i: u64| (mix(seed.wrapping_add(i)), i);
    let mut front: BinaryHeap<((u64, u64), u32)> = BinaryHeap::new();
    let mut held = 0u64;
    for candidate in eligible()? {
        let (i, tokens) = candidate?;
        front.push((key(i), tokens));
        held += tokens as u64;
        while let Some(&(_, last)) = front.peek().filter(|_| front.len() > 1) {
            if held - (last as u64) < budget.tokens {
                break;
            }
            front.pop();
            held -= last as u64;
        }
    }
    // Below the budget, every candidate is in the front.
    let reached = held >= budget.tokens;
    let front = front.into_sorted_vec();
    let (mut drawn, mut left) = (Vec::new(), budget.tokens);
    let mut take = |(_, i): (u64, u64), tokens: u32, left: &mut u64| {
        if tokens as u64 <= *left {
            drawn.push(i);
            *left -= tokens as u64;
        }
    };
    front.iter().for_each(|&(k, tokens)| take(k, tokens, &mut left));
    if let Some(&(last, _)) = front.last().filter(|_| reached) {
        let mut by_size: BTreeMap<u32, BinaryHeap<(u64, u64)>> = BTreeMap::new();
        for candidate in eligible()? {
            let (i, tokens) = candidate?;
            let k = key(i);
            if k <= last || tokens as u64 > left {
                continue;
            }
            // A candidate of no tokens always fits: each is kept (and drawn).
            let most = left / tokens.max(1) as u64;
            let first = by_size.entry(tokens).or_default();
            first.push(k);
            if tokens > 0 && first.len() as u64 > most {
                first.pop();
            }
        }
        let mut past: Vec<((u64, u64), u32)> = by_size.into_iter().flat_map(|(n, keys)| keys.into_iter().map(move |k| (k, n))).collect();
        past.sort_unstable();
        past.into_iter().for_each(|(k, tokens)| take(k, tokens, &mut left));
    }
    drawn.sort_unstable();
    Ok(drawn)
}

/// A 64-bit mix (SplitMix64's finaliser): a random-looking key from a seed and a position.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
    candidates.iter().filter(|c| c.eligible).map(|c| c.n_tokens).collect::<Sizes>().floor(share)
}

/// How many eligible chunks have each size: what [`cost_floor`] is found from, one count per
/// distinct size (not one entry per chunk).
#[derive(Debug, Default)]
pub struct Sizes {
    counts: BTreeMap<u32, u64>,
    total: u64,
}

impl Sizes {
    pub fn add(&mut self, n_tokens: u32) {
        *self.counts.entry(n_tokens).or_default() += 1;
        self.total += 1;
    }

    /// `share` of the median size (the size at position `total / 2` in ascending order), at
    /// least 1 token; 1 without sizes.
    pub fn floor(&self, share: f64) -> u32 {
        let mut before = 0;
        for (&size, &count) in &self.counts {
            if before + count > self.total / 2 {
                return ((size as f64 * share) as u32).max(1);
            }
            before += count;
        }
        1
    }
}

impl FromIterator<u32> for Sizes {
    fn from_iter<I: IntoIterator<Item = u32>>(sizes: I) -> Self {
        let mut counted = Self::default();
        sizes.into_iter().for_each(|n| counted.add(n));
        counted
    }
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

    /// The draw as its definition states it: every eligible candidate in key order, taken while
    /// it fits.
    fn drawn_by_sorting(sizes: &[(u64, u32)], budget: u64, seed: u64) -> Vec<u64> {
        let seed = mix(seed ^ RANDOM_DRAW);
        let mut order: Vec<((u64, u64), u32)> = sizes.iter().map(|&(i, n)| ((mix(seed.wrapping_add(i)), i), n)).collect();
        order.sort_unstable();
        let (mut left, mut drawn) = (budget, Vec::new());
        for ((_, i), n) in order {
            if n as u64 <= left {
                left -= n as u64;
                drawn.push(i);
            }
        }
        drawn.sort_unstable();
        drawn
    }

    #[test]
    fn the_random_draw_holding_the_draw_alone_is_the_draw_over_every_candidate() {
        let mut state = 17u64;
        let mut next = |below: u64| {
            state = mix(state);
            state % below
        };
        for case in 0..200u64 {
            let n = 1 + next(300);
            // Sizes from 0 tokens (always fit) up to larger than some budgets.
            let largest = if case % 3 == 0 { 2000 } else { 120 };
            let mut sizes: Vec<(u64, u32)> = Vec::new();
            for i in 0..n {
                let (kept, tokens) = (next(5) > 0, next(largest) as u32);
                if kept {
                    sizes.push((i, tokens));
                }
            }
            let total: u64 = sizes.iter().map(|&(_, n)| n as u64).sum();
            for budget in [0, 1, next(total.max(1)), total / 2, total, total + 5] {
                let eligible = || Ok::<_, ()>(sizes.iter().map(|&s| Ok(s)));
                let drawn = draw_at_random(eligible, Budget { tokens: budget }, case).expect("draw");
                assert_eq!(drawn, drawn_by_sorting(&sizes, budget, case), "case {case}, budget {budget}");
            }
        }
        // Seeded: the same seed the same draw, another seed another.
        let cands: Vec<Candidate> =
            (0..50).map(|i| Candidate { leaf: 0, n_tokens: 10 + i % 7, eligible: i % 5 != 0, vector: &[] }).collect();
        let drawn = random_draw(&cands, Budget { tokens: 100 }, 3);
        assert_eq!(drawn, random_draw(&cands, Budget { tokens: 100 }, 3));
        assert_ne!(drawn, random_draw(&cands, Budget { tokens: 100 }, 4));
        assert!(drawn.iter().zip(&cands).all(|(&d, c)| !d || c.eligible));
        let used: u32 = cands.iter().zip(&drawn).filter(|(_, &d)| d).map(|(c, _)| c.n_tokens).sum();
        assert!(used <= 100 && used + 10 > 100, "{used}");
    }

    #[test]
    fn the_cost_floor_is_a_share_of_the_median_size_counted_per_size() {
        let sorted_median = |sizes: &[u32]| {
            let mut sorted = sizes.to_vec();
            sorted.sort_unstable();
            sorted[sorted.len() / 2]
        };
        for sizes in [vec![5], vec![3, 1], vec![7, 7, 2, 9], vec![4, 4, 4, 1, 1, 8, 8, 8, 8]] {
            assert_eq!(sizes.iter().copied().collect::<Sizes>().floor(1.0), sorted_median(&sizes), "{sizes:?}");
        }
        assert_eq!(Sizes::default().floor(0.5), 1);
    }
}
