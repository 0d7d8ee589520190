//! The subset against baselines at equal token budgets. Every method takes only eligible
//! chunks (not near-duplicates, not under the minimum size), the rule selection obeys.

use crate::RunData;
use rayon::prelude::*;
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::HashSet;
use strata_core::vectors::dot;

/// The questions coverage is measured on: their vectors and the documents holding answers.
pub struct Questions<'a> {
    pub vectors: &'a [Vec<f32>],
    pub doc_ids: &'a [&'a str],
}

/// What one selection covers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SubsetMetrics {
    pub selected_passages: f64,
    pub selected_tokens: f64,
    /// Share of leaves (nodes holding chunks) with a selected chunk.
    pub leaves_covered: f64,
    /// Share of depth-1 nodes with a selected chunk below them.
    pub level1_covered: f64,
    /// Mean over all chunks of the best cosine to a selected chunk (floored at 0).
    pub facility_location: f64,
    /// Mean over questions of the best cosine to a selected chunk (floored at 0).
    pub question_similarity: Option<f64>,
    /// Share of questions whose document has a selected chunk.
    pub questions_covered: Option<f64>,
    /// Share of selected tokens in chunks that are marked near-duplicates or whose cosine to
    /// an earlier selected chunk reaches the near-duplicate threshold.
    pub duplicate_token_share: f64,
    pub median_passage_tokens: f64,
}

const METRICS: usize = 9;

impl SubsetMetrics {
    fn values(&self) -> [(&'static str, Option<f64>); METRICS] {
        [
            ("selected_passages", Some(self.selected_passages)),
            ("selected_tokens", Some(self.selected_tokens)),
            ("leaves_covered", Some(self.leaves_covered)),
            ("level1_covered", Some(self.level1_covered)),
            ("facility_location", Some(self.facility_location)),
            ("question_similarity", self.question_similarity),
            ("questions_covered", self.questions_covered),
            ("duplicate_token_share", Some(self.duplicate_token_share)),
            ("median_passage_tokens", Some(self.median_passage_tokens)),
        ]
    }

    fn from_values(v: &[Option<f64>]) -> Self {
        let f = |i: usize| v.get(i).copied().flatten().unwrap_or(0.0);
        Self {
            selected_passages: f(0),
            selected_tokens: f(1),
            leaves_covered: f(2),
            level1_covered: f(3),
            facility_location: f(4),
            question_similarity: v.get(5).copied().flatten(),
            questions_covered: v.get(6).copied().flatten(),
            duplicate_token_share: f(7),
            median_passage_tokens: f(8),
        }
    }
}

/// One method at one budget: the metrics (mean over runs) and, for several runs, their
/// standard deviation (n - 1), serialised flat as `<metric>_std`.
#[derive(Debug, Clone, PartialEq)]
pub struct CoverageRow {
    /// Fraction of corpus tokens.
    pub budget: f64,
    pub budget_tokens: u64,
    /// `strata`, `random` or `first_chunk`.
    pub method: String,
    pub runs: usize,
    /// For `strata`: `run` (the run's own selection) or `recomputed` (selection rerun at this budget).
    pub selection: Option<String>,
    pub mean: SubsetMetrics,
    pub std: Option<SubsetMetrics>,
}

impl Serialize for CoverageRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("budget", &self.budget)?;
        map.serialize_entry("budget_tokens", &self.budget_tokens)?;
        map.serialize_entry("method", &self.method)?;
        map.serialize_entry("runs", &self.runs)?;
        if let Some(sel) = &self.selection {
            map.serialize_entry("selection", sel)?;
        }
        for (name, v) in self.mean.values() {
            map.serialize_entry(name, &v)?;
        }
        if let Some(std) = &self.std {
            for (name, v) in std.values() {
                map.serialize_entry(&format!("{name}_std"), &v)?;
            }
        }
        map.end()
    }
}

/// Takes units in `order` while they fit in the budget (one that does not fit is skipped, so
/// smaller ones later may still fill the rest).
fn fill(data: &RunData, order: impl IntoIterator<Item = usize>, budget_tokens: u64) -> Vec<bool> {
    let mut chosen = vec![false; data.chunks.len()];
    let mut left = budget_tokens;
    for i in order {
        let n = data.chunks[i].n_tokens as u64;
        if n <= left {
            chosen[i] = true;
            left -= n;
        }
    }
    chosen
}

/// Uniformly random eligible units until the budget is full: selection's own draw (the one
/// the ablation sets train on; at the run's seed and budget, the very same passages).
pub fn random_selection(data: &RunData, eligible: &[bool], budget_tokens: u64, seed: u64) -> Vec<bool> {
    strata_select::random_draw(&data.candidates(eligible), strata_select::Budget { tokens: budget_tokens }, seed)
}

/// The first eligible chunk of each document, documents in corpus order, until the budget
/// is full (never a second chunk of a document).
pub fn first_passage_selection(data: &RunData, eligible: &[bool], budget_tokens: u64) -> Vec<bool> {
    let mut seen = HashSet::new();
    let order: Vec<usize> = (0..data.chunks.len()).filter(|&i| eligible[i] && seen.insert(data.chunks[i].doc_id.as_str())).collect();
    fill(data, order, budget_tokens)
}

/// Mean of values computed in parallel, summed in order so the figure is reproducible.
fn mean(values: Vec<f64>) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// What the selection `selected` covers.
pub fn subset_metrics(data: &RunData, selected: &[bool], questions: Option<&Questions>, near_duplicate: f32) -> SubsetMetrics {
    let picked: Vec<usize> = (0..data.chunks.len()).filter(|&i| selected.get(i).copied().unwrap_or(false)).collect();
    let share = |covered: usize, all: usize| covered as f64 / all.max(1) as f64;
    let distinct = |ids: &mut dyn Iterator<Item = u32>| ids.collect::<HashSet<u32>>().len();

    let leaves = distinct(&mut data.chunks.iter().map(|c| c.node_id));
    let leaves_hit = distinct(&mut picked.iter().map(|&i| data.chunks[i].node_id));
    let level1 = data.clusters_at(1);
    let level1_hit = distinct(&mut picked.iter().map(|&i| level1[i]));
    let best = |v: &[f32]| picked.iter().map(|&j| dot(v, data.vector(j))).fold(0f32, f32::max) as f64;
    let facility = mean((0..data.chunks.len()).into_par_iter().map(|i| best(data.vector(i))).collect());

    let (question_similarity, questions_covered) = match questions {
        Some(q) => {
            let docs: HashSet<&str> = picked.iter().map(|&i| data.chunks[i].doc_id.as_str()).collect();
            let sim = mean(q.vectors.par_iter().map(|v| best(v)).collect());
            (Some(sim), Some(share(q.doc_ids.iter().filter(|d| docs.contains(*d)).count(), q.doc_ids.len())))
        }
        None => (None, None),
    };

    let tokens: u64 = picked.iter().map(|&i| data.chunks[i].n_tokens as u64).sum();
    let duplicate_tokens: u64 = picked
        .par_iter()
        .enumerate()
        .filter(|&(k, &i)| data.chunks[i].duplicate || picked[..k].iter().any(|&j| dot(data.vector(i), data.vector(j)) >= near_duplicate))
        .map(|(_, &i)| data.chunks[i].n_tokens as u64)
        .sum();
    let mut sizes: Vec<u32> = picked.iter().map(|&i| data.chunks[i].n_tokens).collect();
    sizes.sort_unstable();
    let median = match sizes.len() {
        0 => 0.0,
        n if n % 2 == 1 => sizes[n / 2] as f64,
        n => (sizes[n / 2 - 1] as f64 + sizes[n / 2] as f64) / 2.0,
    };
    SubsetMetrics {
        selected_passages: picked.len() as f64,
        selected_tokens: tokens as f64,
        leaves_covered: share(leaves_hit, leaves),
        level1_covered: share(level1_hit, distinct(&mut level1.iter().copied())),
        facility_location: facility,
        question_similarity,
        questions_covered,
        duplicate_token_share: if tokens == 0 { 0.0 } else { duplicate_tokens as f64 / tokens as f64 },
        median_passage_tokens: median,
    }
}

/// Mean and (for several runs) sample standard deviation of each metric.
fn summarise(runs: &[SubsetMetrics]) -> (SubsetMetrics, Option<SubsetMetrics>) {
    let columns: Vec<Vec<f64>> = (0..METRICS).map(|k| runs.iter().filter_map(|r| r.values()[k].1).collect()).collect();
    let mean: Vec<Option<f64>> = columns.iter().map(|c| (!c.is_empty()).then(|| c.iter().sum::<f64>() / c.len() as f64)).collect();
    let std: Vec<Option<f64>> = columns
        .iter()
        .zip(&mean)
        .map(|(c, m)| m.filter(|_| c.len() > 1).map(|m| (c.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (c.len() - 1) as f64).sqrt()))
        .collect();
    (SubsetMetrics::from_values(&mean), (runs.len() > 1).then(|| SubsetMetrics::from_values(&std)))
}

/// Our selection at one budget, as the CLI computed it.
pub struct StrataSelection {
    /// Fraction of corpus tokens.
    pub budget: f64,
    pub budget_tokens: u64,
    pub selected: Vec<bool>,
    /// Whether it is the run's own selection (rather than selection rerun at this budget).
    pub from_run: bool,
}

/// Rows for every budget: `strata`, `random` (mean and spread over `seeds` seeds) and
/// `first_chunk`.
pub fn compare(
    data: &RunData,
    eligible: &[bool],
    strata: &[StrataSelection],
    questions: Option<&Questions>,
    near_duplicate: f32,
    seeds: u64,
    seed: u64,
) -> Vec<CoverageRow> {
    let mut rows = Vec::new();
    for s in strata {
        let row = |method: &str, runs: Vec<SubsetMetrics>, selection: Option<&str>| {
            let (mean, std) = summarise(&runs);
            CoverageRow {
                budget: s.budget,
                budget_tokens: s.budget_tokens,
                method: method.into(),
                runs: runs.len(),
                selection: selection.map(Into::into),
                mean,
                std,
            }
        };
        let ours = subset_metrics(data, &s.selected, questions, near_duplicate);
        rows.push(row("strata", vec![ours], Some(if s.from_run { "run" } else { "recomputed" })));
        let random: Vec<SubsetMetrics> = (0..seeds)
            .map(|k| {
                subset_metrics(data, &random_selection(data, eligible, s.budget_tokens, seed.wrapping_add(k)), questions, near_duplicate)
            })
            .collect();
        rows.push(row("random", random, None));
        let first = subset_metrics(data, &first_passage_selection(data, eligible, s.budget_tokens), questions, near_duplicate);
        rows.push(row("first_passage", vec![first], None));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tests::toy;

    fn chunks() -> RunData {
        // doc a: 3 chunks, doc b: 2, doc c: 1; leaves 2, 3, 4; one crumb (10 tokens).
        let mut d = toy(
            &[("a", 2, 10), ("a", 2, 50), ("a", 3, 60), ("b", 3, 40), ("b", 4, 45), ("c", 4, 70)],
            &[[1.0, 0.0], [1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0], [0.0, 1.0]],
        );
        d.chunks[5].duplicate = true;
        d
    }

    #[test]
    fn baselines_respect_budget_and_eligibility() {
        let data = chunks();
        let eligible = data.eligible(32);
        assert_eq!(eligible, vec![false, true, true, true, true, false]);
        for budget in [0, 39, 100, 1000] {
            for seed in 0..20 {
                for sel in [random_selection(&data, &eligible, budget, seed), first_passage_selection(&data, &eligible, budget)] {
                    let used: u64 = data.chunks.iter().zip(&sel).filter(|(_, &s)| s).map(|(c, _)| c.n_tokens as u64).sum();
                    assert!(used <= budget, "{used} > {budget}");
                    assert!(sel.iter().zip(&eligible).all(|(&s, &e)| !s || e));
                }
            }
        }
        // First eligible chunk per document, in corpus order: a's second chunk, then b's first.
        assert_eq!(first_passage_selection(&data, &eligible, 1000), vec![false, true, false, true, false, false]);
        assert_eq!(first_passage_selection(&data, &eligible, 60), vec![false, true, false, false, false, false]);
        // Random fills: everything eligible fits in 1000 tokens.
        assert_eq!(random_selection(&data, &eligible, 1000, 3), eligible);
    }

    #[test]
    fn metrics_of_a_hand_picked_subset() {
        let data = chunks();
        let q_vectors = vec![vec![1.0, 0.0], vec![0.0, -1.0]];
        let q_docs = ["b", "c"];
        let questions = Questions { vectors: &q_vectors, doc_ids: &q_docs };
        // Chunks 1 (a, leaf 2, [1,0]) and 3 (b, leaf 3, [0.6,0.8]).
        let m = subset_metrics(&data, &[false, true, false, true, false, false], Some(&questions), 0.95);
        assert_eq!((m.selected_passages, m.selected_tokens, m.median_passage_tokens), (2.0, 90.0, 45.0));
        assert!((m.leaves_covered - 2.0 / 3.0).abs() < 1e-9);
        assert!((m.level1_covered - 0.5).abs() < 1e-9, "level-1 nodes 1 and 4; only 1 hit");
        // Best cosines per chunk: 1, 1, 0.96, 1, 0.8, 0.8.
        assert!((m.facility_location - (1.0 + 1.0 + 0.96 + 1.0 + 0.8 + 0.8) / 6.0).abs() < 1e-6);
        assert_eq!(m.question_similarity, Some(0.5), "1.0 and the 0 floor");
        assert_eq!(m.questions_covered, Some(0.5));
        assert_eq!(m.duplicate_token_share, 0.0);
        // Chunks 4 and 5 are the same vector (and 5 is marked): all of 5's tokens are duplicate.
        let d = subset_metrics(&data, &[false, false, false, false, true, true], None, 0.95);
        assert!((d.duplicate_token_share - 70.0 / 115.0).abs() < 1e-9);
        assert_eq!(d.question_similarity, None);
    }

    #[test]
    fn compare_reports_each_method_with_spread_for_random() {
        let data = chunks();
        let eligible = data.eligible(32);
        let strata =
            [StrataSelection { budget: 0.5, budget_tokens: 100, selected: vec![false, true, false, true, false, false], from_run: true }];
        let rows = compare(&data, &eligible, &strata, None, 0.95, 5, 42);
        let methods: Vec<&str> = rows.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["strata", "random", "first_passage"]);
        assert_eq!(rows[1].runs, 5);
        assert!(rows[1].std.is_some() && rows[0].std.is_none());
        let json = serde_json::to_value(&rows[1]).expect("json");
        assert!(json["facility_location_std"].is_f64() && json["questions_covered_std"].is_null(), "{json}");
        assert!(json["budget"] == 0.5 && json["method"] == "random");
        assert_eq!(serde_json::to_value(&rows[0]).expect("json")["selection"], "run");

        // The figures are those of the selections themselves: ours as given, the first chunk
        // of each document, and the random rows' mean and spread over the five seeds.
        assert_eq!(rows[0].mean, subset_metrics(&data, &strata[0].selected, None, 0.95));
        assert_eq!(rows[2].mean, subset_metrics(&data, &first_passage_selection(&data, &eligible, 100), None, 0.95));
        let facility: Vec<f64> =
            (0..5).map(|k| subset_metrics(&data, &random_selection(&data, &eligible, 100, 42 + k), None, 0.95).facility_location).collect();
        let mean = facility.iter().sum::<f64>() / 5.0;
        let std = (facility.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((rows[1].mean.facility_location - mean).abs() < 1e-12);
        assert!((rows[1].std.expect("spread").facility_location - std).abs() < 1e-12);
        assert!(rows[1].mean.selected_tokens <= 100.0);
    }
}
