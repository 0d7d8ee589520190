//! Mind maps: a taxonomy subtree drawn with tree glyphs, as StructTuning's prompts show it.

use strata_core::TaxonomyTree;

/// Draws the subtree of `top`. A node's children are listed when `expand(node)` holds;
/// `bold` is drawn as `**label**`.
pub fn render(tree: &TaxonomyTree, top: u32, expand: &dyn Fn(u32) -> bool, bold: Option<u32>) -> String {
    let mut out = label(tree, top, bold);
    if expand(top) {
        draw_children(tree, top, "", expand, bold, &mut out);
    }
    out
}

fn draw_children(tree: &TaxonomyTree, id: u32, indent: &str, expand: &dyn Fn(u32) -> bool, bold: Option<u32>, out: &mut String) {
    let kids = tree.children(id);
    for (i, &c) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        out.push('\n');
        out.push_str(indent);
        out.push_str(if last { "└─ " } else { "├─ " });
        out.push_str(&label(tree, c, bold));
        if expand(c) {
            let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
            draw_children(tree, c, &deeper, expand, bold, out);
        }
    }
}

fn label(tree: &TaxonomyTree, id: u32, bold: Option<u32>) -> String {
    let l = &tree.node(id).label;
    if bold == Some(id) {
        format!("**{l}**")
    } else {
        l.clone()
    }
}

/// The mind map of a chunk's sample: its depth-1 branch, only the path to its leaf expanded,
/// the leaf in bold.
pub fn chunk_map(tree: &TaxonomyTree, leaf: u32) -> String {
    let lineage = tree.branch_lineage(leaf);
    let Some(&branch) = lineage.first() else {
        return tree.node(leaf).label.clone();
    };
    render(tree, branch, &|n| lineage.contains(&n) && n != leaf, Some(leaf))
}

/// The whole subtree of `top`.
pub fn full_map(tree: &TaxonomyTree, top: u32) -> String {
    render(tree, top, &|_| true, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::records::TaxonomyNode;

    fn node(id: u32, parent: Option<u32>, depth: u8, label: &str) -> TaxonomyNode {
        TaxonomyNode {
            node_id: id,
            parent_id: parent,
            depth,
            label: label.into(),
            keywords: vec![],
            path: vec![],
            n_chunks: 1,
            n_tokens: 1,
            medoid_chunk_id: None,
        }
    }

    fn sample() -> Vec<TaxonomyNode> {
        vec![
            node(0, None, 0, "Medicine"),
            node(1, Some(0), 1, "Cardiology"),
            node(2, Some(1), 2, "Heart failure"),
            node(3, Some(2), 3, "Diuretics and fluid balance"),
            node(4, Some(2), 3, "Device therapy"),
            node(5, Some(1), 2, "Arrhythmias"),
            node(6, Some(5), 3, "Atrial fibrillation"),
            node(7, Some(0), 1, "Neurology"),
        ]
    }

    #[test]
    fn chunk_map_expands_only_the_path_to_the_leaf() {
        let tree = TaxonomyTree::new(sample()).expect("tree");
        insta::assert_snapshot!(chunk_map(&tree, 3));
    }

    #[test]
    fn full_map_draws_the_whole_branch() {
        let tree = TaxonomyTree::new(sample()).expect("tree");
        insta::assert_snapshot!(full_map(&tree, 1));
    }

    #[test]
    fn a_leaf_branch_is_its_bold_label() {
        let tree = TaxonomyTree::new(sample()).expect("tree");
        assert_eq!(chunk_map(&tree, 7), "**Neurology**");
    }
}
