//! The taxonomy as an SVG treemap: depth-1 branches, and inside each its leaves, with area
//! proportional to tokens and the selected share of each leaf filled darker.

use crate::html::{esc, hue, num, pct};
use crate::tree::Tree;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// Squarified treemap layout (Bruls, Huizing, van Wijk 2000): one rectangle per value, in
/// the order of `values`, together filling `r`; zero or negative values get empty rectangles.
pub fn squarify(values: &[f64], r: Rect) -> Vec<Rect> {
    let mut out = vec![Rect { x: r.x, y: r.y, w: 0.0, h: 0.0 }; values.len()];
    let total: f64 = values.iter().filter(|v| **v > 0.0).sum();
    if total <= 0.0 || r.w <= 0.0 || r.h <= 0.0 {
        return out;
    }
    let scale = r.w * r.h / total;
    let mut order: Vec<usize> = (0..values.len()).filter(|&i| values[i] > 0.0).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let areas: Vec<(usize, f64)> = order.iter().map(|&i| (i, values[i] * scale)).collect();

    let mut free = r;
    let mut row: Vec<(usize, f64)> = Vec::new();
    for &item in &areas {
        let side = free.w.min(free.h);
        let mut longer = row.clone();
        longer.push(item);
        if row.is_empty() || worst(&longer, side) <= worst(&row, side) {
            row = longer;
        } else {
            free = lay_row(&row, free, &mut out);
            row = vec![item];
        }
    }
    if !row.is_empty() {
        lay_row(&row, free, &mut out);
    }
    out
}

/// The worst aspect ratio of a row of areas laid along a side of length `side`.
fn worst(row: &[(usize, f64)], side: f64) -> f64 {
    let s: f64 = row.iter().map(|(_, a)| a).sum();
    row.iter().map(|(_, a)| (side * side * a / (s * s)).max(s * s / (side * side * a))).fold(0.0, f64::max)
}

/// Lays `row` along the shorter side of `free` and returns what is left.
fn lay_row(row: &[(usize, f64)], free: Rect, out: &mut [Rect]) -> Rect {
    let s: f64 = row.iter().map(|(_, a)| a).sum();
    if free.w >= free.h {
        let w = if free.h > 0.0 { (s / free.h).min(free.w) } else { 0.0 };
        let mut y = free.y;
        for &(i, a) in row {
            let h = if w > 0.0 { a / w } else { 0.0 };
            out[i] = Rect { x: free.x, y, w, h };
            y += h;
        }
        Rect { x: free.x + w, y: free.y, w: free.w - w, h: free.h }
    } else {
        let h = if free.w > 0.0 { (s / free.w).min(free.h) } else { 0.0 };
        let mut x = free.x;
        for &(i, a) in row {
            let w = if h > 0.0 { a / h } else { 0.0 };
            out[i] = Rect { x, y: free.y, w, h };
            x += w;
        }
        Rect { x: free.x, y: free.y + h, w: free.w, h: free.h - h }
    }
}

/// `label` cut to what fits in `width` pixels at about 6.5 px a character, or `None`.
fn fitted(label: &str, width: f64, height: f64) -> Option<String> {
    if height < 13.0 {
        return None;
    }
    let room = ((width - 6.0) / 6.5).floor().max(0.0) as usize;
    let n = label.chars().count();
    if n <= room {
        Some(label.to_string())
    } else if room >= 5 {
        Some(format!("{}…", label.chars().take(room - 1).collect::<String>()))
    } else {
        None
    }
}

const W: f64 = 1000.0;
const H: f64 = 560.0;

/// The treemap as an inline `<svg>`.
pub fn render(tree: &Tree) -> String {
    let nodes = tree.taxonomy.nodes();
    let mut branches: Vec<usize> = tree.taxonomy.children(0).iter().map(|&b| b as usize).collect();
    if branches.is_empty() {
        branches = vec![0];
    }
    let sizes: Vec<f64> = branches.iter().map(|&b| nodes[b].n_tokens as f64).collect();
    let mut svg = format!("<svg class=\"treemap\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Treemap of the taxonomy\">\n");
    for (bi, (&b, rect)) in branches.iter().zip(squarify(&sizes, Rect { x: 0.0, y: 0.0, w: W, h: H })).enumerate() {
        if rect.w < 1.0 || rect.h < 1.0 {
            continue;
        }
        let h = hue(bi);
        let node = &nodes[b];
        svg += &format!(
            "<g class=\"tm-branch\"><title>{}: {} tokens, {} selected ({:.1}%)</title>\n<rect class=\"tm-branch-box\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"hsl({h:.0},35%,70%)\"/>\n",
            esc(&node.label),
            num(node.n_tokens as f64),
            num(tree.selected_tokens[b] as f64),
            pct(tree.selected_tokens[b] as f64, node.n_tokens as f64),
            rect.x, rect.y, rect.w, rect.h
        );
        let header = if rect.h > 48.0 { 18.0 } else { 0.0 };
        if let Some(text) = fitted(&node.label, rect.w, header) {
            svg += &format!("<text class=\"tm-branch-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n", rect.x + 4.0, rect.y + 13.0, esc(&text));
        }
        let inner = Rect { x: rect.x + 2.0, y: rect.y + header, w: rect.w - 4.0, h: rect.h - header - 2.0 };
        let leaves: Vec<usize> = tree.taxonomy.leaves_under(b as u32).map(|l| l as usize).collect();
        let leaf_sizes: Vec<f64> = leaves.iter().map(|&l| nodes[l].n_tokens as f64).collect();
        for (&l, r) in leaves.iter().zip(squarify(&leaf_sizes, inner)) {
            if r.w < 0.5 || r.h < 0.5 {
                continue;
            }
            let leaf = &nodes[l];
            let share = pct(tree.selected_tokens[l] as f64, leaf.n_tokens as f64);
            let sel_h = r.h * share / 100.0;
            svg += &format!(
                "<g class=\"tm-leaf\"><title>{}\n{} chunks, {} tokens; {} selected tokens ({share:.1}%)\nkeywords: {}</title>\
<rect class=\"tm-leaf-box\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"hsl({h:.0},45%,88%)\"/>\
<rect class=\"tm-sel\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"hsl({h:.0},55%,42%)\"/>",
                esc(&leaf.path.join(" › ")),
                num(leaf.n_chunks as f64),
                num(leaf.n_tokens as f64),
                num(tree.selected_tokens[l] as f64),
                esc(&leaf.keywords.join(", ")),
                r.x,
                r.y,
                r.w,
                r.h,
                r.x,
                r.y + r.h - sel_h,
                r.w,
                sel_h,
            );
            if let Some(text) = fitted(&leaf.label, r.w, r.h) {
                svg += &format!("<text x=\"{:.1}\" y=\"{:.1}\">{}</text>", r.x + 3.0, r.y + 12.0, esc(&text));
            }
            svg += "</g>\n";
        }
        svg += "</g>\n";
    }
    svg += "</svg>\n";
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(r: &Rect) -> f64 {
        r.w * r.h
    }

    #[test]
    fn squarify_fills_the_rectangle_in_proportion() {
        let values = [6.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.0];
        let r = Rect { x: 0.0, y: 0.0, w: 6.0, h: 4.0 };
        let rects = squarify(&values, r);
        for (v, rect) in values.iter().zip(&rects) {
            assert!((area(rect) - v).abs() < 1e-9, "{rect:?} for {v}");
            assert!(rect.x >= -1e-9 && rect.y >= -1e-9 && rect.x + rect.w <= 6.0 + 1e-9 && rect.y + rect.h <= 4.0 + 1e-9);
        }
        // the paper's example: the first two values fill a 3 × 4 column... as two 3 × 2 boxes
        assert!((rects[0].w - 3.0).abs() < 1e-9 && (rects[0].h - 2.0).abs() < 1e-9, "{:?}", rects[0]);
    }

    #[test]
    fn squarify_handles_zeros_and_empty_space() {
        let rects = squarify(&[0.0, 5.0, -1.0], Rect { x: 1.0, y: 1.0, w: 10.0, h: 2.0 });
        assert_eq!(area(&rects[0]), 0.0);
        assert!((area(&rects[1]) - 20.0).abs() < 1e-9);
        assert_eq!(area(&rects[2]), 0.0);
        assert!(squarify(&[1.0], Rect { x: 0.0, y: 0.0, w: 0.0, h: 5.0 }).iter().all(|r| area(r) == 0.0));
    }

    #[test]
    fn labels_fit_or_are_cut() {
        assert_eq!(fitted("Cardiology", 200.0, 20.0).as_deref(), Some("Cardiology"));
        assert_eq!(fitted("Cardiology", 50.0, 20.0).as_deref(), Some("Cardi…"));
        assert_eq!(fitted("Cardiology", 20.0, 20.0), None);
        assert_eq!(fitted("Cardiology", 200.0, 5.0), None);
    }
}
