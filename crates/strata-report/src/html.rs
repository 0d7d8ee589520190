//! Small HTML helpers: escaping, numbers, excerpts, colours.

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number for people (`strata_core::ledger::fmt_num`); it never needs escaping.
pub fn num(x: f64) -> String {
    strata_core::ledger::fmt_num(x)
}

/// The first `max` characters of `text` with whitespace collapsed, `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max {
        return collapsed;
    }
    let cut: String = collapsed.chars().take(max).collect();
    format!("{}…", cut.trim_end())
}

/// A percentage with one decimal, `part / whole` clamped to [0, 100].
pub fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (100.0 * part / whole).clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// Distinct, deterministic hues (golden angle) for the `i`-th series or branch.
pub fn hue(i: usize) -> f64 {
    (i as f64 * 137.508 + 200.0) % 360.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc(r#"<b a="x">&'</b>"#), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;&lt;/b&gt;");
    }

    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(excerpt("a  b\n c", 10), "a b c");
        assert_eq!(excerpt("ééééé", 3), "ééé…");
    }
}
