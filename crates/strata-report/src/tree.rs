//! What the selection took under each node of the taxonomy (summed up the tree), and the
//! text of each node's medoid chunk.

use std::collections::HashMap;
use strata_core::records::PublishedChunk;
use strata_core::TaxonomyTree;

/// The taxonomy with what the selection took under each node, by node id.
pub struct Tree<'a> {
    pub taxonomy: &'a TaxonomyTree,
    /// Selected chunks and tokens under each node, its descendants included.
    pub selected_chunks: Vec<u64>,
    pub selected_tokens: Vec<u64>,
    /// Text of each node's medoid chunk, when the chunk is known.
    pub medoid_text: Vec<Option<&'a str>>,
}

impl<'a> Tree<'a> {
    pub fn build(taxonomy: &'a TaxonomyTree, chunks: &'a [PublishedChunk]) -> Self {
        let n = taxonomy.nodes().len();
        let (mut chunks_at, mut tokens_at) = (vec![0u64; n], vec![0u64; n]);
        for c in chunks.iter().filter(|c| c.selected && (c.node_id as usize) < n) {
            chunks_at[c.node_id as usize] += 1;
            tokens_at[c.node_id as usize] += c.n_tokens as u64;
        }
        let by_id: HashMap<&str, &str> = chunks.iter().map(|c| (c.chunk_id.as_str(), c.text.as_str())).collect();
        let medoid_text = taxonomy.nodes().iter().map(|n| n.medoid_chunk_id.as_deref().and_then(|id| by_id.get(id).copied())).collect();
        Tree { taxonomy, selected_chunks: taxonomy.sum_up(&chunks_at), selected_tokens: taxonomy.sum_up(&tokens_at), medoid_text }
    }

    /// `(leaves with a selected chunk, all leaves)`.
    pub fn leaf_coverage(&self) -> (usize, usize) {
        let leaves: Vec<u32> = self.taxonomy.leaves().collect();
        (leaves.iter().filter(|&&l| self.selected_chunks[l as usize] > 0).count(), leaves.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::records::TaxonomyNode;

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
            keyword_label: None,
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
            passage_id: format!("{id}#p"),
        }
    }

    #[test]
    fn selection_sums_up_the_tree() {
        let nodes = vec![
            node(0, None, 0, "root", 1000),
            node(1, Some(0), 1, "a", 600),
            node(2, Some(1), 2, "a1", 400),
            node(3, Some(1), 2, "a2", 200),
            node(4, Some(0), 1, "b", 400),
        ];
        let chunks = vec![
            chunk("c2", 2, 100, true, "x"),
            chunk("x", 2, 300, false, "y"),
            chunk("c3", 3, 50, true, "z"),
            chunk("c4", 4, 400, false, "w"),
        ];
        let taxonomy = TaxonomyTree::new(nodes).expect("tree");
        let t = Tree::build(&taxonomy, &chunks);
        assert_eq!(t.selected_tokens, vec![150, 150, 100, 50, 0]);
        assert_eq!(t.selected_chunks, vec![2, 2, 1, 1, 0]);
        assert_eq!(t.leaf_coverage(), (2, 3));
        assert_eq!(t.medoid_text[2], Some("x"));
        assert_eq!(t.medoid_text[1], None);
    }
}
