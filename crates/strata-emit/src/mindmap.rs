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

/// The mind map of a passage's sample: [`chunk_map`] with, under the bold leaf, the
/// document's own structure of the passage: its sections' heading paths (in order, common
/// prefixes drawn once), so the corpus-wide topic path leads into the document's headings.
pub fn passage_map(tree: &TaxonomyTree, leaf: u32, sections: &[Vec<String>]) -> String {
    let map = chunk_map(tree, leaf);
    let outline = outline(sections);
    if outline.is_empty() {
        return map;
    }
    // The bold leaf's line: its own indent plus one level carries the outline.
    let bold = format!("**{}**", tree.node(leaf).label);
    let mut out = String::new();
    for line in map.lines() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
        if line.ends_with(&bold) {
            let prefix: String = line.chars().take(line.chars().count() - bold.chars().count()).collect();
            // Under a `├─ ` the column continues (`│  `); under `└─ ` or the top it is blank.
            let indent = prefix.replace("├─ ", "│  ").replace("└─ ", "   ");
            draw_outline(&outline, &indent, &mut out);
        }
    }
    out
}

/// A heading trie: each entry a heading and the headings below it, in order of appearance.
#[derive(Debug, Default, PartialEq)]
struct Outline(Vec<(String, Outline)>);

impl Outline {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn outline(paths: &[Vec<String>]) -> Outline {
    let mut root = Outline::default();
    for path in paths {
        let mut level = &mut root;
        for heading in path {
            let at = match level.0.iter().position(|(h, _)| h == heading) {
                Some(i) => i,
                None => {
                    level.0.push((heading.clone(), Outline::default()));
                    level.0.len() - 1
                }
            };
            level = &mut level.0[at].1;
        }
    }
    root
}

fn draw_outline(outline: &Outline, indent: &str, out: &mut String) {
    for (i, (heading, below)) in outline.0.iter().enumerate() {
        let last = i + 1 == outline.0.len();
        out.push('\n');
        out.push_str(indent);
        out.push_str(if last { "└─ " } else { "├─ " });
        out.push_str(heading);
        draw_outline(below, &format!("{indent}{}", if last { "   " } else { "│  " }), out);
    }
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
        TaxonomyNode { node_id: id, parent_id: parent, depth, label: label.into(), n_chunks: 1, n_tokens: 1, ..Default::default() }
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
    fn passage_map_draws_the_documents_sections_under_the_bold_leaf() {
        let tree = TaxonomyTree::new(sample()).expect("tree");
        let sections = |paths: &[&[&str]]| paths.iter().map(|p| p.iter().map(|h| h.to_string()).collect()).collect::<Vec<Vec<String>>>();
        let map = passage_map(&tree, 3, &sections(&[&["Loop diuretics", "Dosing"], &["Loop diuretics", "Side effects"]]));
        let expected = "Cardiology\n├─ Heart failure\n│  ├─ **Diuretics and fluid balance**\n│  │  └─ Loop diuretics\n│  │     ├─ Dosing\n│  │     └─ Side effects\n│  └─ Device therapy\n└─ Arrhythmias";
        assert_eq!(map, expected);
        assert_eq!(passage_map(&tree, 7, &sections(&[&["Stroke"]])), "**Neurology**\n└─ Stroke");
        assert_eq!(passage_map(&tree, 3, &[]), chunk_map(&tree, 3));
    }

    #[test]
    fn a_leaf_branch_is_its_bold_label() {
        let tree = TaxonomyTree::new(sample()).expect("tree");
        assert_eq!(chunk_map(&tree, 7), "**Neurology**");
    }
}
