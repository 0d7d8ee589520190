//! The clustering and duplicate marking on vectors whose right answer is known: points drawn
//! tightly around three orthogonal directions, and hand-placed duplicates.

use ndarray::Array2;
use strata_taxonomy::{build_tree, build_tree_on_sample, exact_duplicates, mark_duplicates, Cluster, TaxonomyConfig};

/// `per_group` unit vectors near each of the first three axes of 8 dimensions, interleaved
/// (row i belongs to group i % 3), each nudged by a small seeded offset.
fn three_groups(per_group: usize) -> Array2<f32> {
    let n = 3 * per_group;
    let mut values = Vec::with_capacity(n * 8);
    let mut state = 7u64;
    for i in 0..n {
        let mut v = [0f32; 8];
        v[i % 3] = 1.0;
        for x in v.iter_mut() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *x += ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        values.extend(v.iter().map(|x| x / norm));
    }
    Array2::from_shape_vec((n, 8), values).expect("shape")
}

fn config(depth: usize, min_node_size: usize) -> TaxonomyConfig {
    TaxonomyConfig { depth, k_min: 2, k_max: 5, min_node_size, silhouette_tolerance: 0.0, ..TaxonomyConfig::default() }
}

fn leaves(c: &Cluster) -> Vec<&Cluster> {
    if c.children.is_empty() {
        vec![c]
    } else {
        c.children.iter().flat_map(leaves).collect()
    }
}

#[test]
fn three_clear_groups_become_three_children() {
    let vectors = three_groups(40);
    let tree = build_tree(&vectors, &config(1, 4), 42);
    assert_eq!(tree.members, (0..120).collect::<Vec<_>>());
    assert_eq!(tree.children.len(), 3, "k chosen by the silhouette");
    for child in &tree.children {
        assert_eq!(child.members.len(), 40);
        let group = child.members[0] % 3;
        assert!(child.members.iter().all(|m| m % 3 == group), "a child mixes groups: {:?}", child.members);
        assert!(child.members.windows(2).all(|w| w[0] < w[1]), "members ascending");
    }
    // Children come largest first, ties by first member: groups 0, 1, 2.
    assert_eq!(tree.children.iter().map(|c| c.members[0]).collect::<Vec<_>>(), vec![0, 1, 2]);
}

#[test]
fn every_row_lands_in_one_leaf_no_node_is_too_small_and_the_seed_decides() {
    let vectors = three_groups(30);
    let cfg = config(3, 5);
    let tree = build_tree(&vectors, &cfg, 7);
    let mut seen: Vec<usize> = leaves(&tree).iter().flat_map(|l| l.members.clone()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..90).collect::<Vec<_>>());
    fn check(c: &Cluster, min: usize) {
        for child in &c.children {
            assert!(child.members.len() >= min, "a node of {} under the minimum {min}", child.members.len());
            check(child, min);
        }
    }
    check(&tree, cfg.min_node_size);
    let again = build_tree(&vectors, &cfg, 7);
    assert_eq!(leaves(&tree).iter().map(|l| &l.members).collect::<Vec<_>>(), leaves(&again).iter().map(|l| &l.members).collect::<Vec<_>>());
}

#[test]
fn a_tree_fitted_on_a_sample_places_every_row_where_its_group_is() {
    // 300 rows; the tree is fitted on every fifth, then every row descends it.
    let vectors = three_groups(100);
    let sample: Vec<usize> = (0..300).step_by(5).collect();
    let fitted = build_tree_on_sample(&vectors.select(ndarray::Axis(0), &sample), &config(1, 40), 3, 300);
    // Sizes are judged scaled: each child holds 20 sample rows standing for 100 rows, over the
    // minimum of 40, which 20 rows alone would not reach.
    assert_eq!(fitted.children.len(), 3);
    let paths: Vec<Vec<u8>> = vectors.rows().into_iter().map(|v| fitted.descend(v.as_slice().expect("row"))).collect();
    let mut placed = vec![Vec::new(); fitted.children.len()];
    paths.iter().enumerate().for_each(|(row, path)| placed[path[0] as usize].push(row));
    for members in &placed {
        assert_eq!(members.len(), 100);
        let group = members[0] % 3;
        assert!(members.iter().all(|m| m % 3 == group), "a child mixes groups");
    }
    // The leaves' paths, in the leaves' order, are where their own centroids descend.
    let paths = fitted.leaf_paths();
    assert_eq!(paths.len(), fitted.leaves().len());
    for (leaf, path) in fitted.leaves().iter().zip(&paths) {
        assert_eq!(&fitted.descend(&leaf.centroid), path);
    }
}

#[test]
fn too_few_rows_stay_one_leaf() {
    let vectors = three_groups(2);
    let tree = build_tree(&vectors, &config(3, 4), 1);
    assert!(tree.children.is_empty());
    assert_eq!(tree.members.len(), 6);
}

#[test]
fn duplicates_point_at_the_earliest_kept_chunk() {
    // Rows: 0 and 2 the same direction, 1 close to 0 (cosine 0.99), 3 another direction,
    // 4 the same text as 3. Leaves: {0, 1, 2} and {3, 4}; row 5 repeats row 0 in the other leaf.
    let c = 0.99f32;
    let s = (1.0 - c * c).sqrt();
    let rows = [[1.0, 0.0, 0.0], [c, s, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]];
    let vectors = Array2::from_shape_vec((6, 3), rows.iter().flatten().copied().collect()).expect("shape");
    let hashes = [10u64, 11, 12, 13, 13, 14];
    let (a, b): (&[usize], &[usize]) = (&[0, 1, 2], &[3, 4, 5]);
    let exact = exact_duplicates(|| Ok::<_, ()>(hashes.into_iter().map(Ok))).expect("hashes");
    let each = |marked: strata_taxonomy::Duplicates| (0..6).map(|row| marked.of(row)).collect::<Vec<_>>();
    let marked = mark_duplicates(exact.clone(), vectors.view(), &[a, b], 0.95);
    // Near within a leaf (1 and 2 after 0), exact text anywhere (4 after 3); row 5 is near
    // row 0 but in another leaf, so it stays.
    assert_eq!(marked.count(), 3);
    assert_eq!(each(marked), [None, Some(0), Some(0), None, Some(3), None]);
    let strict = mark_duplicates(exact, vectors.view(), &[a, b], 0.999);
    assert_eq!(each(strict), [None, None, Some(0), None, Some(3), None]);
}
