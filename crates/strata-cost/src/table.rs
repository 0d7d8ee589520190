//! The ledger as a plain-text table for the terminal.

use strata_core::ledger::{fmt_num, Ledger};

/// Renders the ledger: the routes, then every assumption with its value, the corpus figures,
/// and the literature notes (marked as published findings, not computed here).
pub fn render_table(ledger: &Ledger) -> String {
    let header = [
        "route",
        "trains",
        "train tokens",
        "train FLOPs",
        "GPU-hours",
        "USD",
        "trainable",
        "+prompt tok/query",
        "+FLOPs/query",
        "break-even queries vs RAG",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in &ledger.rows {
        table.push(vec![
            r.route.clone(),
            if r.trains { "yes" } else { "no" }.into(),
            fmt_num(r.training_tokens as f64),
            fmt_num(r.training_flops),
            fmt_num(r.gpu_hours),
            fmt_num(r.cost_usd),
            fmt_num(r.trainable_params as f64),
            fmt_num(r.extra_prompt_tokens_per_query),
            fmt_num(r.extra_flops_per_query),
            match (r.break_even_queries_vs_rag, r.break_even_days_vs_rag) {
                (Some(q), Some(d)) => format!("{} ({} days)", fmt_num(q), fmt_num(d)),
                (Some(q), None) => fmt_num(q),
                _ => "-".into(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len()).map(|c| table.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::from("Cost ledger (computed; formulas in crates/strata-cost/FORMULAS.md)\n\n");
    for (i, row) in table.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| if c < 2 { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
            out.push('\n');
        }
    }
    out.push_str("\nRoutes\n");
    for r in &ledger.rows {
        out.push_str(&format!("  {:<10} {}: {}\n", r.route, r.name, r.note));
    }
    out.push_str("\nAssumptions\n");
    for a in &ledger.assumptions {
        let unit = if a.unit.is_empty() { String::new() } else { format!(" {}", a.unit) };
        out.push_str(&format!("  {} = {}{}  ({})\n", a.name, a.value, unit, a.note));
    }
    let c = &ledger.corpus;
    out.push_str("\nCorpus\n");
    for (name, value) in [
        ("corpus_tokens", c.corpus_tokens as f64),
        ("subset_tokens", c.subset_tokens as f64),
        ("subset_samples", c.subset_samples as f64),
        ("ssft_tokens", c.ssft_tokens as f64),
        ("ssft_samples", c.ssft_samples as f64),
        ("mean_chunk_tokens", c.mean_chunk_tokens),
        ("n_chunks", c.n_chunks as f64),
        ("index_bytes", c.index_bytes as f64),
        ("index_build_seconds", c.index_build_seconds),
    ] {
        out.push_str(&format!("  {name} = {}\n", fmt_num(value)));
    }
    out.push_str("\nLiterature (published findings, not computed here)\n");
    for l in &ledger.literature {
        out.push_str(&format!("  [{}] {} ({})\n", l.route, l.claim, l.source));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compute, CostConfig};
    use strata_core::ledger::CorpusFigures;

    #[test]
    fn table_lists_every_route_and_assumption() {
        let figures = CorpusFigures { corpus_tokens: 1_000_000, subset_tokens: 10_000, mean_chunk_tokens: 200.0, ..Default::default() };
        let ledger = compute(&CostConfig::default(), figures).expect("ledger");
        let text = render_table(&ledger);
        for r in &ledger.rows {
            assert!(text.contains(&r.route), "{} missing", r.route);
        }
        for a in &ledger.assumptions {
            assert!(text.contains(&format!("{} = {}", a.name, a.value)), "{} missing", a.name);
        }
        assert!(text.contains("mfu = 0.4"));
        assert!(text.contains("3,000 (3 days)"), "{text}");
        assert!(text.contains("arXiv 2407.16724"));
    }
}
