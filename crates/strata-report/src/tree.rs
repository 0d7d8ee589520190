//! The taxonomy as a tree with selected chunks and tokens summed up through `parent_id`.

use std::collections::HashMap;
use strata_core::records::{PublishedChunk, TaxonomyNode};

/// The taxonomy nodes with their tree edges and what the selection took under each.
pub struct Tree<'a> {
    pub nodes: &'a [TaxonomyNode],
    /// Children of each node (indices into `nodes`), in file order.
    pub kids: Vec<Vec<usize>>,
    /// Nodes without a (known) parent, in file order.
    pub roots: Vec<usize>,
    /// Selected chunks and tokens under each node, its descendants included.
    pub selected_chunks: Vec<u64>,
    pub selected_tokens: Vec<u64>,
    /// Text of each node's medoid chunk, when the chunk is known.
    pub medoid_text: Vec<Option<&'a str>>,
}

impl<'a> Tree<'a> {
    pub fn build(nodes: &'a [TaxonomyNode], chunks: &'a [PublishedChunk]) -> Self {
        let index: HashMap<u32, usize> = nodes.iter().enumerate().map(|(i, n)| (n.node_id, i)).collect();
        let parent: Vec<Option<usize>> =
            nodes.iter().enumerate().map(|(i, n)| n.parent_id.and_then(|p| index.get(&p).copied()).filter(|&p| p != i)).collect();
        let roots: Vec<usize> = (0..nodes.len()).filter(|&i| parent[i].is_none()).collect();

        // Tree edges in depth-first order from the roots; a malformed cycle is never entered.
        let mut kids = vec![Vec::new(); nodes.len()];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                kids[*p].push(i);
            }
        }
        let mut seen = vec![false; nodes.len()];
        let mut preorder = Vec::new();
        let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            preorder.push(i);
            stack.extend(kids[i].iter().rev().filter(|&&k| !seen[k]));
        }
        for (i, k) in kids.iter_mut().enumerate() {
            if !seen[i] {
                k.clear();
            }
        }

        let mut selected_chunks = vec![0u64; nodes.len()];
        let mut selected_tokens = vec![0u64; nodes.len()];
        let by_id: HashMap<&str, &str> = chunks.iter().map(|c| (c.chunk_id.as_str(), c.text.as_str())).collect();
        for c in chunks.iter().filter(|c| c.selected) {
            if let Some(&i) = index.get(&c.node_id) {
                selected_chunks[i] += 1;
                selected_tokens[i] += c.n_tokens as u64;
            }
        }
        for &i in preorder.iter().rev() {
            if let Some(p) = parent[i].filter(|_| seen[i]) {
                selected_chunks[p] += selected_chunks[i];
                selected_tokens[p] += selected_tokens[i];
            }
        }
        let medoid_text = nodes.iter().map(|n| n.medoid_chunk_id.as_deref().and_then(|id| by_id.get(id).copied())).collect();
        Tree { nodes, kids, roots, selected_chunks, selected_tokens, medoid_text }
    }

    /// Leaves reachable from the roots, in depth-first order.
    pub fn leaves_under(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![i];
        while let Some(j) = stack.pop() {
            if self.kids[j].is_empty() {
                out.push(j);
            }
            stack.extend(self.kids[j].iter().rev());
        }
        out
    }

    /// `(leaves with a selected chunk, all leaves)`.
    pub fn leaf_coverage(&self) -> (usize, usize) {
        let leaves: Vec<usize> = self.roots.iter().flat_map(|&r| self.leaves_under(r)).collect();
        (leaves.iter().filter(|&&l| self.selected_chunks[l] > 0).count(), leaves.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, parent: Option<u32>, depth: u8, label: &str, tokens: u64) -> TaxonomyNode {
        TaxonomyNode {
            node_id: id,
            parent_id: parent,
            depth,
            label: label.into(),
            keywords: vec![format!("{label}-kw")],
            path: vec![label.into()],
            n_chunks: (tokens / 100) as u32,
            n_tokens: tokens,
            medoid_chunk_id: Some(format!("c{id}")),
        }
    }

    fn chunk(id: &str, node: u32, tokens: u32, selected: bool, text: &str) -> PublishedChunk {
        PublishedChunk {
            chunk_id: id.into(),
            doc_id: "doc".into(),
            source: "doc.md".into(),
            ordinal: 0,
            heading_path: vec![],
            text: text.into(),
            n_tokens: tokens,
            byte_start: 0,
            byte_end: 1,
            node_id: node,
            taxonomy_path: vec![],
            duplicate_of: None,
            selected,
        }
    }

    #[test]
    fn selection_sums_up_the_tree() {
        let nodes = vec![
            node(0, None, 0, "root", 1000),
            node(1, Some(0), 1, "a", 600),
            node(3, Some(1), 2, "a1", 400),
            node(4, Some(1), 2, "a2", 200),
            node(2, Some(0), 1, "b", 400),
        ];
        let chunks = vec![
            chunk("c3", 3, 100, true, "x"),
            chunk("x", 3, 300, false, "y"),
            chunk("c4", 4, 50, true, "z"),
            chunk("c2", 2, 400, false, "w"),
        ];
        let t = Tree::build(&nodes, &chunks);
        assert_eq!(t.roots, vec![0]);
        assert_eq!(t.selected_tokens, vec![150, 150, 100, 50, 0]);
        assert_eq!(t.selected_chunks[0], 2);
        assert_eq!(t.leaf_coverage(), (2, 3));
        assert_eq!(t.medoid_text[2], Some("x"));
    }

    #[test]
    fn cycles_and_unknown_parents_do_not_hang() {
        let nodes = vec![node(1, Some(2), 1, "a", 10), node(2, Some(1), 1, "b", 10), node(3, Some(9), 1, "c", 10)];
        let t = Tree::build(&nodes, &[]);
        assert_eq!(t.roots, vec![2]);
        assert_eq!(t.leaf_coverage(), (0, 1));
    }
}
