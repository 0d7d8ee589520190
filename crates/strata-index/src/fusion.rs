//! Reciprocal rank fusion (Cormack et al. 2009): several rankings of the same items made
//! into one by summing 1 / (k + rank) over the rankings each item appears in. It needs no
//! score calibration between a lexical and a dense ranking; k = 60 is the common default.

use std::collections::HashMap;

/// The usual constant: it damps the weight of the very first ranks.
pub const RRF_K: f64 = 60.0;

/// The items of `rankings` (each best first) with their fused scores, best first. Ties go to
/// the item with the better single rank, then to the smaller item, so the order is
/// deterministic.
pub fn reciprocal_rank_fusion<'a>(rankings: &[Vec<&'a str>], k: f64) -> Vec<(&'a str, f64)> {
    let mut fused: HashMap<&'a str, (f64, usize)> = HashMap::new();
    for ranking in rankings {
        for (i, &item) in ranking.iter().enumerate() {
            let entry = fused.entry(item).or_insert((0.0, usize::MAX));
            entry.0 += 1.0 / (k + (i + 1) as f64);
            entry.1 = entry.1.min(i);
        }
    }
    let mut items: Vec<(&'a str, (f64, usize))> = fused.into_iter().collect();
    items.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)).then(a.0.cmp(b.0)));
    items.into_iter().map(|(item, (score, _))| (item, score)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_gives_the_hand_computed_order() {
        // With k = 60: a = 1/61 + 1/63, b = 1/62 + 1/61, c = 1/63, d = 1/62.
        // b (0.032522) > a (0.032266) > d (0.016129) > c (0.015873).
        let bm25 = vec!["a", "b", "c"];
        let dense = vec!["b", "d", "a"];
        let order = |fused: Vec<(&'static str, f64)>| fused.into_iter().map(|(item, _)| item).collect::<Vec<_>>();
        let fused = reciprocal_rank_fusion(&[bm25, dense], RRF_K);
        assert!((fused[0].1 - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-12, "{fused:?}");
        assert_eq!(order(fused), ["b", "a", "d", "c"]);
        // One ranking alone keeps its order; equal scores go to the better single rank.
        assert_eq!(order(reciprocal_rank_fusion(&[vec!["x", "y"]], RRF_K)), ["x", "y"]);
        assert_eq!(order(reciprocal_rank_fusion(&[vec!["x", "y"], vec!["y", "x"]], RRF_K)), ["x", "y"]);
    }
}
