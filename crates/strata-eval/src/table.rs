//! The terminal rendering of an [`EvalReport`].

use crate::EvalReport;

/// Columns sized to their widest cell; the first `left` columns left-aligned.
fn grid(header: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let widths: Vec<usize> =
        (0..header.len()).map(|k| rows.iter().map(|r| r[k].chars().count()).chain([header[k].len()]).max().unwrap_or(0)).collect();
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(k, c)| if k < left { format!("{c:<w$}", w = widths[k]) } else { format!("{c:>w$}", w = widths[k]) })
            .collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out += &line(r.iter().map(String::as_str).collect());
    }
    out
}

fn opt(v: Option<f64>, std: Option<f64>) -> String {
    match (v, std) {
        (Some(v), Some(s)) => format!("{v:.3}±{s:.3}"),
        (Some(v), None) => format!("{v:.3}"),
        (None, _) => "-".into(),
    }
}

/// The node labels in one line.
pub fn label_line(q: &strata_core::labels::LabelQuality) -> String {
    format!(
        "\nNode labels: {} below the root; {:.1}% one phrase found verbatim in their node, {:.1}% repeating an ancestor, {} alike sibling pairs\n",
        q.labels,
        100.0 * q.verbatim_share(),
        100.0 * q.redundant_share(),
        q.alike_sibling_pairs
    )
}

/// The report as terminal tables.
/// Long: one section per table (labels, node labels, retrieval, coverage, comparison), top to bottom.
pub fn render_table(report: &EvalReport) -> String {
    let mut out = String::new();
    if report.labels.is_empty() {
        out += "Taxonomy against labels: no label fields in the documents' metadata.\n";
    } else {
        out += "Taxonomy against labels, over chunks (NMI: mutual information / arithmetic mean of the entropies)\n";
        let rows: Vec<Vec<String>> = report
            .labels
            .iter()
            .flat_map(|(field, levels)| {
                levels.iter().map(move |a| {
                    vec![
                        field.clone(),
                        a.depth.to_string(),
                        a.clusters.to_string(),
                        a.labels.to_string(),
                        format!("{:.3}", a.nmi),
                        format!("{:.3}", a.ari),
                        format!("{:.3}", a.purity),
                    ]
                })
            })
            .collect();
        out += &grid(&["field", "depth", "clusters", "labels", "NMI", "ARI", "purity"], &rows, 1);
    }
    out += &label_line(&report.label_quality);
    let t = &report.topic_first;
    out += &format!(
        "Topic first: {:.1}% of the {} documents with several chunks sit whole under one level-1 node; level 1 against section headings: NMI {:.3}\n",
        t.documents_whole_at_level1 * 100.0,
        t.multi_chunk_documents,
        t.level1_vs_section.nmi
    );
    if let Some(r) = report.retrieval.values().next() {
        out += &format!(
            "\nRetrieval, {} questions (hit: a returned chunk of the question's document; latency: one search of an embedded query, the first {} timed one at a time)\n",
            r.questions,
            r.questions.min(crate::LATENCY_QUESTIONS)
        );
        let rows: Vec<Vec<String>> = report
            .retrieval
            .iter()
            .map(|(m, s)| {
                vec![
                    m.clone(),
                    format!("{:.3}", s.recall_at_1),
                    format!("{:.3}", s.recall_at_5),
                    format!("{:.3}", s.recall_at_10),
                    format!("{:.3}", s.mrr),
                    format!("{:.2}", s.p50_ms),
                    format!("{:.2}", s.p99_ms),
                ]
            })
            .collect();
        out += &grid(&["mode", "recall@1", "recall@5", "recall@10", "MRR@10", "p50 ms", "p99 ms"], &rows, 1);
    }
    if !report.coverage.is_empty() {
        out += "\nSubset against baselines (random: mean±sd over seeds)\n";
        let rows: Vec<Vec<String>> = report
            .coverage
            .iter()
            .map(|r| {
                let (m, s) = (&r.mean, r.std.as_ref());
                vec![
                    format!("{}", r.budget),
                    r.method.clone(),
                    format!("{:.0}", m.selected_passages),
                    opt(Some(m.leaves_covered), s.map(|s| s.leaves_covered)),
                    opt(Some(m.level1_covered), s.map(|s| s.level1_covered)),
                    opt(Some(m.facility_location), s.map(|s| s.facility_location)),
                    opt(m.question_similarity, s.and_then(|s| s.question_similarity)),
                    opt(m.questions_covered, s.and_then(|s| s.questions_covered)),
                    format!("{:.3}", m.duplicate_token_share),
                    format!("{:.0}", m.median_passage_tokens),
                ]
            })
            .collect();
        out += &grid(
            &["budget", "method", "passages", "leaves", "level-1", "facility", "q-similarity", "q-covered", "dup-share", "median-tok"],
            &rows,
            2,
        );
    }
    if let Some(c) = &report.comparison {
        out +=
            &format!("\nAgainst {} ({} shared chunks; {} only here, {} only there)\n", c.run, c.shared_chunks, c.only_here, c.only_there);
        let rows: Vec<Vec<String>> = c
            .levels
            .iter()
            .map(|a| {
                vec![a.depth.to_string(), a.clusters.to_string(), a.labels.to_string(), format!("{:.3}", a.nmi), format!("{:.3}", a.ari)]
            })
            .collect();
        out += &grid(&["depth", "clusters here", "clusters there", "NMI", "ARI"], &rows, 0);
        if let Some(v) = c.vector_cosine {
            out += &format!("vector cosine per chunk: mean {:.4}, 1st percentile {:.4}, min {:.4}\n", v.mean, v.p01, v.min);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_aligns_columns() {
        let t = grid(&["a", "n"], &[vec!["long".into(), "1".into()], vec!["x".into(), "100".into()]], 1);
        assert_eq!(t, "a       n\nlong    1\nx     100\n");
    }
}
