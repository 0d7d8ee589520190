//! Cumulative cost (USD) against the number of queries for each route, as an SVG line chart
//! on log-log axes: training routes are flat at their training cost (plus any per-query
//! cost), RAG and prompting grow with the queries; break-even points are marked.

use crate::html::{esc, hue, num};
use strata_core::ledger::Ledger;

const W: f64 = 960.0;
const H: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 250.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;
/// Queries from 10^0 to 10^8.
const X_DECADES: f64 = 8.0;
const STEPS: usize = 80;

fn x_of(log_q: f64) -> f64 {
    LEFT + (W - LEFT - RIGHT) * log_q / X_DECADES
}

fn money(x: f64) -> String {
    let a = x.abs();
    match a {
        _ if a >= 1e9 => format!("${}B", trim(x / 1e9)),
        _ if a >= 1e6 => format!("${}M", trim(x / 1e6)),
        _ if a >= 1e3 => format!("${}k", trim(x / 1e3)),
        _ if a >= 0.01 => format!("${}", trim(x)),
        _ => format!("${x:.0e}"),
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn queries(log_q: f64) -> String {
    ["1", "10", "100", "1k", "10k", "100k", "1M", "10M", "100M"].get(log_q as usize).unwrap_or(&"").to_string()
}

/// The chart as an inline `<svg>`; a short note instead when nothing costs anything.
pub fn render(ledger: &Ledger) -> String {
    let logs: Vec<f64> = (0..=STEPS).map(|i| X_DECADES * i as f64 / STEPS as f64).collect();
    let series: Vec<Vec<(f64, f64)>> = ledger
        .rows
        .iter()
        .map(|r| logs.iter().map(|&lq| (lq, r.cumulative_cost_usd(10f64.powf(lq)))).filter(|(_, c)| *c > 0.0 && c.is_finite()).collect())
        .collect();
    let costs = series.iter().flatten().map(|(_, c)| c.log10());
    let (lo, hi) = costs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| (lo.min(c), hi.max(c)));
    if !lo.is_finite() || !hi.is_finite() {
        return "<p class=\"note\">No route has a cost on this corpus, so there is nothing to chart.</p>\n".into();
    }
    let (y_hi, y_lo) = (hi.ceil().max(lo.floor() + 1.0), lo.floor().max(hi.ceil() - 16.0));
    let y_of = |log_c: f64| TOP + (H - TOP - BOTTOM) * (y_hi - log_c.clamp(y_lo, y_hi)) / (y_hi - y_lo);

    let mut svg = format!("<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Cumulative cost against queries\">\n");
    for d in 0..=X_DECADES as usize {
        let x = x_of(d as f64);
        svg += &format!(
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            H - BOTTOM,
            H - BOTTOM + 16.0,
            queries(d as f64)
        );
    }
    let step = ((y_hi - y_lo) / 8.0).ceil().max(1.0) as usize;
    for d in (y_lo as i64..=y_hi as i64).step_by(step) {
        let y = y_of(d as f64);
        svg += &format!(
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&money(10f64.powi(d as i32)))
        );
    }
    svg += &format!(
        "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">queries served (log scale)</text>\n\
<text class=\"axis\" transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">cumulative cost, USD (log scale)</text>\n",
        x_of(X_DECADES / 2.0),
        H - 8.0,
        (H - BOTTOM + TOP) / 2.0
    );

    for (i, (row, points)) in ledger.rows.iter().zip(&series).enumerate() {
        let colour = format!("hsl({:.0},65%,40%)", hue(i));
        let dash = if row.trains { "" } else { " stroke-dasharray=\"6 3\"" };
        if points.len() > 1 {
            let pts: Vec<String> = points.iter().map(|(lq, c)| format!("{:.1},{:.1}", x_of(*lq), y_of(c.log10()))).collect();
            svg += &format!(
                "<polyline class=\"route\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\"><title>{}: {} training + {} per query</title></polyline>\n",
                pts.join(" "),
                esc(&row.name),
                esc(&money(row.cost_usd)),
                esc(&money(row.extra_cost_usd_per_query))
            );
        }
        if let Some(q) = row.break_even_queries_vs_rag.filter(|q| (1.0..=1e8).contains(q)) {
            let (x, y) = (x_of(q.log10()), y_of(row.cumulative_cost_usd(q).log10()));
            svg += &format!(
                "<circle class=\"break-even\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"white\" stroke=\"{colour}\" stroke-width=\"2\"><title>{} costs the same as RAG after {} queries</title></circle>\n",
                esc(&row.name),
                num(q)
            );
        }
        let ly = TOP + 8.0 + 20.0 * i as f64;
        let lx = W - RIGHT + 16.0;
        svg += &format!(
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            esc(&row.name)
        );
    }
    svg += "</svg>\n";
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_query_ticks_read_well() {
        assert_eq!(money(1500.0), "$1.5k");
        assert_eq!(money(2.0e6), "$2M");
        assert_eq!(money(0.5), "$0.5");
        assert_eq!(money(0.0001), "$1e-4");
        assert_eq!(queries(6.0), "1M");
    }

    /// Each break-even point is drawn once, at its number of queries on the log axis (the
    /// plot spans x = 80 to 710 for 10^0 to 10^8 queries: 78.75 units a decade).
    #[test]
    fn break_even_points_sit_at_their_queries() {
        let ledger = crate::sample::sample_inputs().ledger;
        let svg = render(&ledger);
        let points: Vec<f64> = ledger.rows.iter().filter_map(|r| r.break_even_queries_vs_rag).filter(|q| (1.0..=1e8).contains(q)).collect();
        assert!(points.len() >= 3, "the sample has break-even points: {points:?}");
        assert_eq!(svg.matches("class=\"break-even\"").count(), points.len());
        for q in points {
            let cx = format!("cx=\"{:.1}\"", 80.0 + 78.75 * q.log10());
            assert!(svg.contains(&cx), "no point at {cx} for {q} queries");
        }
        assert_eq!(svg.matches("<polyline").count(), ledger.rows.len());
    }
}
