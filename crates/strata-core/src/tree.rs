//! The taxonomy as a tree: node ids are depth-first preorder positions (root 0), so a node's
//! id is its index, every parent comes before its children and a subtree is a contiguous id
//! range. [`Shape`] is the structure alone (what the taxonomy stage knows before it labels);
//! [`TaxonomyTree`] is the shape with the nodes of `taxonomy.parquet`, checked once when built
//! and then shared by every reader (emit, report, eval).

use crate::records::TaxonomyNode;
use std::ops::Range;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TreeError {
    #[error("the taxonomy has no nodes")]
    Empty,
    #[error("node at position {position} has id {id}: ids must be depth-first positions (0, 1, 2, ...)")]
    IdNotPosition { position: usize, id: u32 },
    #[error("node {id}: its parent {parent:?} does not come before it in depth-first order")]
    BadParent { id: u32, parent: Option<u32> },
    #[error("node {id} has depth {depth}; one below its parent it would be {expected}")]
    BadDepth { id: u32, depth: u8, expected: u8 },
    #[error("node {id} is not a valid node of the taxonomy ({len} nodes)")]
    NoSuchNode { id: u32, len: usize },
}

/// Parents and children by id, ids in depth-first preorder.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    parent: Vec<Option<u32>>,
    children: Vec<Vec<u32>>,
    /// One past the last id of each node's subtree.
    subtree_end: Vec<u32>,
}

impl Shape {
    /// The shape given each node's parent, in id order. Checks that the root is node 0 alone
    /// and that ids are a depth-first preorder (every node's subtree a contiguous id range).
    pub fn from_parents(parent: Vec<Option<u32>>) -> Result<Self, TreeError> {
        if parent.is_empty() {
            return Err(TreeError::Empty);
        }
        let mut children = vec![Vec::new(); parent.len()];
        // The open path from the root to the previous node: in preorder a node's parent is on it.
        let mut open: Vec<u32> = Vec::new();
        let mut subtree_end = vec![0u32; parent.len()];
        for (id, &p) in parent.iter().enumerate() {
            let id = id as u32;
            let bad = || TreeError::BadParent { id, parent: p };
            match p {
                None if id == 0 => {}
                None => return Err(bad()),
                Some(p) => {
                    while open.last().is_some_and(|&o| o != p) {
                        let closed = open.pop().expect("checked non-empty");
                        subtree_end[closed as usize] = id;
                    }
                    if open.is_empty() {
                        return Err(bad());
                    }
                    children[p as usize].push(id);
                }
            }
            open.push(id);
        }
        for closed in open {
            subtree_end[closed as usize] = parent.len() as u32;
        }
        Ok(Self { parent, children, subtree_end })
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    pub fn parent(&self, id: u32) -> Option<u32> {
        self.parent[id as usize]
    }

    /// Children in id order (the taxonomy stage orders them by size).
    pub fn children(&self, id: u32) -> &[u32] {
        &self.children[id as usize]
    }

    pub fn is_leaf(&self, id: u32) -> bool {
        self.children[id as usize].is_empty()
    }

    /// Ids from the root down to `id`, both included.
    pub fn lineage(&self, id: u32) -> Vec<u32> {
        let mut out = vec![id];
        let mut cur = id;
        while let Some(p) = self.parent(cur) {
            out.push(p);
            cur = p;
        }
        out.reverse();
        out
    }

    /// Ids of the subtree of `id` (itself included), in preorder: a contiguous range.
    pub fn subtree(&self, id: u32) -> Range<u32> {
        id..self.subtree_end[id as usize]
    }

    /// Leaves under `id` (itself when it is one), in preorder.
    pub fn leaves_under(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        self.subtree(id).filter(|&i| self.is_leaf(i))
    }

    /// Every leaf, in preorder.
    pub fn leaves(&self) -> impl Iterator<Item = u32> + '_ {
        self.leaves_under(0)
    }

    fn check(&self, id: u32) -> Result<(), TreeError> {
        if (id as usize) < self.len() {
            Ok(())
        } else {
            Err(TreeError::NoSuchNode { id, len: self.len() })
        }
    }
}

/// The nodes of `taxonomy.parquet` with their shape, checked: ids are positions, parents come
/// first, depths follow the parents.
#[derive(Debug, Clone, PartialEq)]
pub struct TaxonomyTree {
    nodes: Vec<TaxonomyNode>,
    shape: Shape,
}

impl TaxonomyTree {
    pub fn new(nodes: Vec<TaxonomyNode>) -> Result<Self, TreeError> {
        if let Some((position, n)) = nodes.iter().enumerate().find(|(i, n)| n.node_id as usize != *i) {
            return Err(TreeError::IdNotPosition { position, id: n.node_id });
        }
        let shape = Shape::from_parents(nodes.iter().map(|n| n.parent_id).collect())?;
        for n in &nodes {
            let expected = n.parent_id.map_or(0, |p| nodes[p as usize].depth.saturating_add(1));
            if n.depth != expected {
                return Err(TreeError::BadDepth { id: n.node_id, depth: n.depth, expected });
            }
        }
        Ok(Self { nodes, shape })
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Every node, in id (depth-first) order.
    pub fn nodes(&self) -> &[TaxonomyNode] {
        &self.nodes
    }

    pub fn root(&self) -> &TaxonomyNode {
        &self.nodes[0]
    }

    /// The node `id`; panics on an id not in the tree (see [`TaxonomyTree::get`]).
    pub fn node(&self, id: u32) -> &TaxonomyNode {
        &self.nodes[id as usize]
    }

    /// The node `id`, or an error naming it when the tree has no such node (an id read from
    /// another file).
    pub fn get(&self, id: u32) -> Result<&TaxonomyNode, TreeError> {
        self.shape.check(id)?;
        Ok(&self.nodes[id as usize])
    }

    pub fn children(&self, id: u32) -> &[u32] {
        self.shape.children(id)
    }

    pub fn is_leaf(&self, id: u32) -> bool {
        self.shape.is_leaf(id)
    }

    /// Ids from the depth-1 ancestor down to `id` (empty for the root): the path in ids.
    pub fn branch_lineage(&self, id: u32) -> Vec<u32> {
        let mut ids = self.shape.lineage(id);
        ids.remove(0);
        ids
    }

    pub fn leaves_under(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        self.shape.leaves_under(id)
    }

    pub fn leaves(&self) -> impl Iterator<Item = u32> + '_ {
        self.shape.leaves()
    }

    pub fn subtree(&self, id: u32) -> Range<u32> {
        self.shape.subtree(id)
    }

    /// Each node's descendant leaves' values summed (leaf values by id, 0 for inner nodes).
    pub fn sum_up(&self, leaf_values: &[u64]) -> Vec<u64> {
        let mut sums = leaf_values.to_vec();
        sums.resize(self.nodes.len(), 0);
        for id in (1..self.nodes.len() as u32).rev() {
            if let Some(p) = self.shape.parent(id) {
                sums[p as usize] += sums[id as usize];
            }
        }
        sums
    }

    pub fn into_nodes(self) -> Vec<TaxonomyNode> {
        self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// root 0 -> {1 -> {2, 3}, 4 -> {5}}
    fn parents() -> Vec<Option<u32>> {
        vec![None, Some(0), Some(1), Some(1), Some(0), Some(4)]
    }

    fn node(id: u32, parent: Option<u32>, depth: u8) -> TaxonomyNode {
        TaxonomyNode { node_id: id, parent_id: parent, depth, label: format!("n{id}"), ..Default::default() }
    }

    fn tree() -> TaxonomyTree {
        let depths = [0, 1, 2, 2, 1, 2];
        TaxonomyTree::new(parents().into_iter().enumerate().map(|(i, p)| node(i as u32, p, depths[i])).collect()).expect("tree")
    }

    #[test]
    fn shape_answers_children_lineage_subtrees_and_leaves() {
        let s = Shape::from_parents(parents()).expect("shape");
        assert_eq!(s.children(0), &[1, 4]);
        assert_eq!(s.children(1), &[2, 3]);
        assert_eq!(s.lineage(3), vec![0, 1, 3]);
        assert_eq!(s.lineage(0), vec![0]);
        assert_eq!(s.subtree(1), 1..4);
        assert_eq!(s.subtree(4), 4..6);
        assert_eq!(s.subtree(0), 0..6);
        assert_eq!(s.leaves().collect::<Vec<_>>(), vec![2, 3, 5]);
        assert_eq!(s.leaves_under(4).collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn ids_that_are_not_a_preorder_are_refused() {
        assert_eq!(Shape::from_parents(vec![]), Err(TreeError::Empty));
        // Two roots.
        assert_eq!(Shape::from_parents(vec![None, None]), Err(TreeError::BadParent { id: 1, parent: None }));
        // 3's parent 1 was closed by 2's sibling move: not depth-first.
        assert_eq!(Shape::from_parents(vec![None, Some(0), Some(0), Some(1)]), Err(TreeError::BadParent { id: 3, parent: Some(1) }));
        // A parent after its child.
        assert_eq!(Shape::from_parents(vec![None, Some(2), Some(0)]), Err(TreeError::BadParent { id: 1, parent: Some(2) }));
    }

    #[test]
    fn tree_checks_ids_and_depths_and_sums_leaves_up() {
        let t = tree();
        assert_eq!(t.branch_lineage(3), vec![1, 3]);
        assert!(t.branch_lineage(0).is_empty());
        assert_eq!(t.sum_up(&[0, 0, 2, 3, 0, 7]), vec![12, 5, 2, 3, 7, 7]);
        assert_eq!(t.get(9), Err(TreeError::NoSuchNode { id: 9, len: 6 }));

        let mut nodes = t.clone().into_nodes();
        nodes[2].depth = 1;
        assert!(matches!(TaxonomyTree::new(nodes), Err(TreeError::BadDepth { id: 2, .. })));
        let mut nodes = t.into_nodes();
        nodes.swap(2, 3);
        assert_eq!(TaxonomyTree::new(nodes), Err(TreeError::IdNotPosition { position: 2, id: 3 }));
    }
}
