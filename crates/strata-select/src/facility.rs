//! Budgeted facility location. The objective is, over every leaf, the sum over the leaf's
//! chunks of their best cosine to a selected chunk of the same leaf; greedy by gain per
//! token is the classic approximation for a knapsack-constrained submodular objective, and
//! lazy evaluation keeps it fast (gains only shrink as the selection grows).

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use std::collections::{BTreeMap, BinaryHeap};

/// A chunk as selection sees it.
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
        let sum: f32 = self
            .clients
            .iter()
            .zip(&self.best)
            .map(|(&c, &b)| (dot(candidates[c].vector, v) - b).max(0.0))
            .sum();
        sum * self.weight
    }

    fn take(&mut self, candidates: &[Candidate], j: usize) {
        let v = candidates[j].vector;
        for (&c, b) in self.clients.iter().zip(self.best.iter_mut()) {
            *b = b.max(dot(candidates[c].vector, v));
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Chooses chunks under `budget`: first one per leaf (largest leaves first, the chunk with
/// the highest gain that fits), then lazy greedy by gain per token over all leaves.
pub fn select(candidates: &[Candidate], budget: Budget, max_clients: usize, seed: u64) -> Vec<bool> {
    let mut members: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        members.entry(c.leaf).or_default().push(i);
    }
    let mut leaves: BTreeMap<u32, Leaf> = members
        .iter()
        .map(|(&id, m)| {
            let clients = sample(m, max_clients, seed ^ id as u64);
            let weight = m.len() as f32 / clients.len().max(1) as f32;
            let best = vec![0.0; clients.len()];
            (id, Leaf { clients, weight, best })
        })
        .collect();

    let mut chosen = vec![false; candidates.len()];
    let mut left = budget.tokens;

    // Coverage first: every leaf gets a chunk while the budget allows.
    let mut by_size: Vec<(&u32, &Vec<usize>)> = members.iter().collect();
    by_size.sort_by_key(|(id, m)| (std::cmp::Reverse(m.iter().map(|&i| candidates[i].n_tokens as u64).sum::<u64>()), **id));
    for (id, m) in by_size {
        let leaf = &leaves[id];
        let best = m
            .iter()
            .copied()
            .filter(|&i| candidates[i].eligible && candidates[i].n_tokens as u64 <= left)
            .map(|i| (leaf.gain(candidates, i), i))
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        if let Some((_, i)) = best {
            take(&mut chosen, &mut left, &mut leaves, candidates, i);
        }
    }

    // Then the rest of the budget, by gain per token.
    let mut heap: BinaryHeap<Entry> = candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| c.eligible && !chosen[*i])
        .map(|(i, c)| Entry { score: leaves[&c.leaf].gain(candidates, i) / c.n_tokens as f32, index: i })
        .collect();
    while let Some(top) = heap.pop() {
        let c = &candidates[top.index];
        if c.n_tokens as u64 > left {
            continue;
        }
        let score = leaves[&c.leaf].gain(candidates, top.index) / c.n_tokens as f32;
        if score <= 0.0 {
            continue;
        }
        if heap.peek().is_some_and(|next| score < next.score) {
            heap.push(Entry { score, index: top.index });
            continue;
        }
        take(&mut chosen, &mut left, &mut leaves, candidates, top.index);
    }
    chosen
}

fn take(chosen: &mut [bool], left: &mut u64, leaves: &mut BTreeMap<u32, Leaf>, candidates: &[Candidate], i: usize) {
    chosen[i] = true;
    *left -= candidates[i].n_tokens as u64;
    if let Some(leaf) = leaves.get_mut(&candidates[i].leaf) {
        leaf.take(candidates, i);
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

/// Up to `limit` of `items`, chosen by a seeded generator, in their original order.
fn sample(items: &[usize], limit: usize, seed: u64) -> Vec<usize> {
    if items.len() <= limit {
        return items.to_vec();
    }
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..items.len()).collect();
    for i in 0..limit {
        let j = i + (rng.next_u64() % (items.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut picked: Vec<usize> = idx[..limit].to_vec();
    picked.sort_unstable();
    picked.into_iter().map(|i| items[i]).collect()
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
        let cands: Vec<Candidate> = vecs
            .iter()
            .zip(leaves)
            .map(|(v, leaf)| Candidate { leaf, n_tokens: 50, eligible: true, vector: v })
            .collect();
        let chosen = select(&cands, Budget { tokens: 100 }, 100, 7);
        assert_eq!(chosen.iter().filter(|&&c| c).count(), 2);
        assert!(chosen[0] || chosen[1]);
        assert!(chosen[2] || chosen[3] || chosen[4]);
    }

    #[test]
    fn never_takes_ineligible_chunks_and_never_exceeds_budget() {
        let vecs = [unit(1.0, 0.0), unit(0.0, 1.0), unit(1.0, 1.0)];
        let cands: Vec<Candidate> = vecs
            .iter()
            .enumerate()
            .map(|(i, v)| Candidate { leaf: 0, n_tokens: 40 + i as u32, eligible: i != 0, vector: v })
            .collect();
        let chosen = select(&cands, Budget { tokens: 85 }, 100, 1);
        assert!(!chosen[0]);
        let used: u32 = cands.iter().zip(&chosen).filter(|(_, &s)| s).map(|(c, _)| c.n_tokens).sum();
        assert!(used <= 85);
    }
}
