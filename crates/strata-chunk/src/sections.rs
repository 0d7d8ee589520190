//! Markdown sections: the text under each ATX heading, with the path of headings above it.
//! Heading lines themselves never become chunk text; they live on in `heading_path`.

/// The body of one section: `text[start..end]` of the document, without its heading line.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub heading_path: Vec<String>,
    pub start: usize,
    pub end: usize,
}

/// Splits `text` at ATX headings (`#` to `######`) outside fenced code blocks.
pub fn sections(text: &str) -> Vec<Section> {
    let mut out = Vec::new();
    // (level, title) of the headings above the current line.
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut body_start = 0;
    let mut in_fence = false;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let line_start = pos;
        pos += line.len();
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some((level, title)) = atx_heading(line) {
            push_section(&mut out, &stack, body_start, line_start);
            while stack.last().is_some_and(|(l, _)| *l >= level) {
                stack.pop();
            }
            stack.push((level, title));
            body_start = pos;
        }
    }
    push_section(&mut out, &stack, body_start, text.len());
    out
}

/// An empty heading (`#` alone) still opens a section but adds nothing to the path.
fn push_section(out: &mut Vec<Section>, stack: &[(usize, String)], start: usize, end: usize) {
    if start < end {
        let heading_path = stack.iter().filter(|(_, t)| !t.is_empty()).map(|(_, t)| t.clone()).collect();
        out.push(Section { heading_path, start, end });
    }
}

/// `## Title` -> (2, "Title"); a heading needs 1 to 6 `#`, then a space or the line's end,
/// and at most three spaces of indentation (CommonMark). `# ` alone is an empty heading.
fn atx_heading(line: &str) -> Option<(usize, String)> {
    let line = line.trim_end_matches(['\n', '\r']);
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let level = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&level) {
        return None;
    }
    let after = &rest[level..];
    if !after.is_empty() && !after.starts_with([' ', '\t']) {
        return None;
    }
    Some((level, after.trim().trim_end_matches('#').trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_become_paths_and_leave_the_body() {
        let doc = "# Heart\n\nIntro text.\n\n## Failure\n\nWeak pump.\n\n### Drugs\n\nDiuretics.\n\n## Rhythm\n\nFast.\n";
        let s = sections(doc);
        let got: Vec<(Vec<String>, &str)> = s.iter().map(|s| (s.heading_path.clone(), doc[s.start..s.end].trim())).collect();
        assert_eq!(
            got,
            vec![
                (vec!["Heart".to_string()], "Intro text."),
                (vec!["Heart".into(), "Failure".into()], "Weak pump."),
                (vec!["Heart".into(), "Failure".into(), "Drugs".into()], "Diuretics."),
                (vec!["Heart".into(), "Rhythm".into()], "Fast."),
            ]
        );
    }

    #[test]
    fn fenced_code_and_hashtags_are_not_headings() {
        let doc = "Text #tag\n```\n# not a heading\n```\n#also-not\n";
        let s = sections(doc);
        assert_eq!(s.len(), 1);
        assert!(s[0].heading_path.is_empty());
    }

    #[test]
    fn an_empty_heading_is_a_heading_without_a_title() {
        // As in MedQuAD's CDC/0000199: the `# ` line is not text.
        let doc = "# \n\n## Prevention\n\nVaccines work.\n#\nMore.\n";
        let got: Vec<(Vec<String>, &str)> = sections(doc)
            .iter()
            .map(|s| (s.heading_path.clone(), doc[s.start..s.end].trim()))
            .filter(|(_, body)| !body.is_empty())
            .collect();
        assert_eq!(got, vec![(vec!["Prevention".to_string()], "Vaccines work."), (vec![], "More.")]);
    }
}
