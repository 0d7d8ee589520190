//! The report page: one self-contained HTML file (inline CSS and a little JS, no network).

use crate::html::{esc, excerpt, num, pct};
use crate::tree::Tree;
use crate::{chart, treemap, ReportInputs};
use serde_json::Value;
use strata_core::ledger::Ledger;

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232a;background:#f6f7f9;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:22px 0 8px}section>h2:first-child{margin-top:0}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:16px 20px;margin:18px 0}
.lead,.note{color:#555}.note{font-size:12.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(165px,1fr));gap:12px;margin:18px 0}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px 14px}
.card b{display:block;font-size:22px}.card span{color:#555;font-size:12.5px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e6e8eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{overflow-x:auto}
#tree details{margin-left:18px}#tree>details{margin-left:0}
#tree summary{cursor:pointer;padding:2px 0}
.lbl{font-weight:600}.kw{color:#666;font-size:12px}.fig{color:#333;font-size:12px;margin-left:6px}
.bar{display:inline-block;width:80px;height:8px;background:#e3e7ec;border-radius:4px;vertical-align:middle;margin:0 4px 0 8px;overflow:hidden}
.bar i{display:block;height:100%;background:#2f7d5b}
.medoid{margin:2px 0 6px 18px;color:#555;font-size:12px;max-width:900px}
svg{width:100%;height:auto;font-size:11px}
.treemap text{fill:#1d232a;pointer-events:none}.tm-branch-label{font-weight:700;font-size:12px}
.treemap .tm-branch-box{stroke:#fff;stroke-width:2}.treemap .tm-leaf-box{stroke:#fff;stroke-width:1}
.chart .grid{stroke:#e3e7ec}.chart .tick,.chart .legend{fill:#333}.chart .axis{fill:#555;font-size:12px}
pre{background:#f6f7f9;border:1px solid #e6e8eb;padding:10px;overflow-x:auto;font-size:12px}
button{font:inherit;font-size:12.5px;margin-right:6px}
"#;

/// `window.onerror` is hooked first so a script error leaves a marker in the DOM
/// (`data-script-error` on `<html>`) that `tools/report-check.sh` looks for.
const ERROR_HOOK: &str = "window.onerror=function(m){document.documentElement.setAttribute('data-script-error',String(m));};";

const SCRIPT: &str = r#"(function(){
function all(open){document.querySelectorAll('#tree details').forEach(function(d){d.open=open;});}
document.getElementById('expand-all').addEventListener('click',function(){all(true);});
document.getElementById('collapse-all').addEventListener('click',function(){all(false);});
document.documentElement.setAttribute('data-ready','1');
})();"#;

/// Renders the whole page. Pure: the same inputs give the same bytes.
pub fn render(inputs: &ReportInputs) -> String {
    let tree = Tree::build(&inputs.taxonomy, &inputs.chunks);
    let domain = domain(inputs, &tree);
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{t}</title>\n<script>{ERROR_HOOK}</script>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>{t}</h1>\n<p class=\"lead\">What this run made of the corpus: the topic tree (taxonomy) it found, which passages the token budget selected for training, and what each way of giving a model this knowledge would cost.</p>\n",
        t = esc(&format!("Domain corpus report: {domain}"))
    );
    h += &cards(inputs, &tree);
    h += &tree_section(&tree, inputs);
    h += &format!(
        "<section id=\"treemap\">\n<h2>Taxonomy map</h2>\n<p class=\"note\">Each box is a leaf topic, grouped by top-level branch; its area is proportional to its tokens in the corpus, and the dark part at its bottom is the share the budget selected. Hover a box for details.</p>\n{}</section>\n",
        treemap::render(&tree)
    );
    h += &ledger_section(&inputs.ledger);
    if let Some(eval) = &inputs.eval {
        h += &eval_section(eval);
    }
    h += &run_section(inputs);
    h += &format!("</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n");
    h
}

fn domain(inputs: &ReportInputs, tree: &Tree) -> String {
    let from_config = inputs.manifest.as_ref().and_then(|m| m.config.get("domain")).and_then(Value::as_str);
    from_config.unwrap_or(&tree.taxonomy.root().label).to_string()
}

fn budget_tokens(inputs: &ReportInputs) -> Option<f64> {
    inputs.manifest.as_ref()?.stages.select.as_ref().map(|s| s.summary.budget_tokens as f64)
}

fn cards(inputs: &ReportInputs, tree: &Tree) -> String {
    // The corpus totals as the chunk stage recorded them (through the ledger), the selection
    // as summed up the tree.
    let corpus_tokens = inputs.ledger.corpus.corpus_tokens;
    // Selected tokens and passages as the selection counted them (target tokens); the tree's
    // sums, in chunk tokens, when the manifest lacks them.
    let select =
        inputs.manifest.as_ref().and_then(|m| m.stages.select.as_ref()).map(|s| (s.summary.selected_tokens, s.summary.selected_passages));
    let (selected, n_selected, unit) = match select {
        Some((tokens, passages)) => (tokens, passages, "passages"),
        None => (tree.selected_tokens[0], tree.selected_chunks[0], "chunks"),
    };
    let (covered, leaves) = tree.leaf_coverage();
    let budget = budget_tokens(inputs);
    let card = |value: String, what: String| format!("<div class=\"card\"><b>{}</b><span>{}</span></div>\n", esc(&value), esc(&what));
    let mut out = String::from("<div class=\"cards\">\n");
    out += &card(num(inputs.ledger.corpus.n_chunks as f64), "chunks in the corpus".into());
    out += &card(num(corpus_tokens as f64), "corpus tokens".into());
    out += &card(
        budget.map(num).unwrap_or_else(|| "–".into()),
        match budget {
            Some(b) => format!("token budget ({:.2}% of the corpus)", pct(b, corpus_tokens as f64)),
            None => "token budget (not recorded)".into(),
        },
    );
    out += &card(
        num(selected as f64),
        format!("selected tokens in {n_selected} {unit} ({:.2}% of the corpus)", pct(selected as f64, corpus_tokens as f64)),
    );
    out += &card(format!("{covered} / {leaves}"), "leaf topics with a selected chunk".into());
    out += &card(num(inputs.ledger.corpus.subset_tokens as f64), "tokens in the training samples (SCPT)".into());
    out += "</div>\n";
    out += &format!("<p class=\"note\">{}</p>\n", esc(&token_note(inputs)));
    out
}

/// Which tokenizer the budget, passages and training samples are counted in.
fn token_note(inputs: &ReportInputs) -> String {
    match inputs.manifest.as_ref().and_then(|m| m.stages.chunk.as_ref()).map(|c| &c.summary.target_tokenizer) {
        Some(t) if t.is_target => format!(
            "Corpus, budget, passages and training samples are counted in tokens of the target model's tokenizer ({}, sha256 {}).",
            t.file,
            &t.sha256[..t.sha256.len().min(12)]
        ),
        Some(_) => "No target tokenizer was named ([target] tokenizer): token counts are the embedding model's, which differ from those of the model you train.".into(),
        None => "The manifest does not say which tokenizer counted the tokens.".into(),
    }
}

fn tree_section(tree: &Tree, inputs: &ReportInputs) -> String {
    let mut out = String::from(
        "<section id=\"tree\">\n<h2>Taxonomy</h2>\n<p class=\"note\">The topic tree, top level first. Each line: topic label, its distinctive keywords, chunks and tokens under it, and a bar with the share of its tokens the budget selected. The text below a topic is an excerpt of its most representative chunk.</p>\n",
    );
    out += &label_note(inputs);
    out += "<p><button type=\"button\" id=\"expand-all\">Expand all</button><button type=\"button\" id=\"collapse-all\">Collapse all</button></p>\n";
    node_html(tree, 0, &mut out);
    out += "</section>\n";
    out
}

/// Where the labels came from and how they read, as the taxonomy stage recorded it.
fn label_note(inputs: &ReportInputs) -> String {
    let Some(t) = inputs.manifest.as_ref().and_then(|m| m.stages.taxonomy.as_ref()) else {
        return String::new();
    };
    let (s, q) = (&t.summary, &t.summary.labels);
    format!(
        "<p class=\"note\" id=\"label-note\">Labels: {} headings that cover their topic, {} phrases of the topic's text, {} from keywords; {:.0}% one phrase found in the topic's text, {:.0}% repeating a parent's words, {} alike sibling pairs.</p>\n",
        s.heading_labels,
        s.phrase_labels,
        s.keyword_labels,
        100.0 * q.verbatim_share(),
        100.0 * q.redundant_share(),
        q.alike_sibling_pairs
    )
}

fn node_html(tree: &Tree, id: u32, out: &mut String) {
    let (n, i) = (tree.taxonomy.node(id), id as usize);
    let sel = tree.selected_tokens[i] as f64;
    let share = pct(sel, n.n_tokens as f64);
    let open = if n.depth <= 1 { " open" } else { "" };
    *out += &format!(
        "<details{open}><summary><span class=\"lbl\">{}</span> <span class=\"kw\">{}</span><span class=\"fig\">{} chunks · {} tokens</span><span class=\"bar\" title=\"{share:.1}% selected\"><i style=\"width:{share:.1}%\"></i></span><span class=\"fig\">{} selected ({share:.1}%)</span></summary>\n",
        esc(&n.label),
        esc(&n.keywords.join(", ")),
        num(n.n_chunks as f64),
        num(n.n_tokens as f64),
        num(sel),
    );
    if let Some(text) = tree.medoid_text[i] {
        *out += &format!("<p class=\"medoid\" title=\"{}\">{}</p>\n", esc(&excerpt(text, 1200)), esc(&excerpt(text, 220)));
    }
    for &k in tree.taxonomy.children(id) {
        node_html(tree, k, out);
    }
    *out += "</details>\n";
}

fn ledger_section(ledger: &Ledger) -> String {
    let mut out = String::from(
        "<section id=\"cost\">\n<h2>Cost of knowledge-injection routes</h2>\n<p class=\"note\">Estimates for this corpus from the assumptions below (training ≈ 6 × parameters × tokens × epochs, priced at the stated GPU throughput, utilisation and price). Break-even: the number of queries after which training once is cheaper than adding retrieved chunks to every prompt (RAG).</p>\n<div class=\"scroll\"><table class=\"ledger\">\n<tr><th>route</th><th>trains</th><th>training tokens</th><th>training FLOPs</th><th>GPU-hours</th><th>cost (USD)</th><th>trainable params</th><th>extra prompt tokens / query</th><th>extra FLOPs / query</th><th>extra USD / query</th><th>break-even vs RAG (queries)</th><th>note</th></tr>\n",
    );
    for r in &ledger.rows {
        let be = match (r.break_even_queries_vs_rag, r.break_even_days_vs_rag) {
            (Some(q), Some(d)) => format!("{} (≈ {} days)", num(q), num(d)),
            (Some(q), None) => num(q),
            (None, _) => "–".into(),
        };
        out += &format!(
            "<tr><td><b>{}</b><br><span class=\"kw\">{}</span></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
            esc(&r.name),
            esc(&r.route),
            if r.trains { "yes" } else { "no" },
            num(r.training_tokens as f64),
            num(r.training_flops),
            num(r.gpu_hours),
            num(r.cost_usd),
            num(r.trainable_params as f64),
            num(r.extra_prompt_tokens_per_query),
            num(r.extra_flops_per_query),
            num(r.extra_cost_usd_per_query),
            esc(&be),
            esc(&r.note),
        );
    }
    out += "</table></div>\n<h2>Cumulative cost as queries grow</h2>\n<p class=\"note\">Training routes are flat at their one-off cost (solid lines); routes that pay per query grow with the queries (dashed: routes that train nothing). Circles mark break-even with RAG.</p>\n";
    out += &chart::render(ledger);
    out += "<h2>Assumptions</h2>\n<div class=\"scroll\"><table class=\"assumptions\">\n<tr><th>assumption</th><th>value</th><th>unit</th><th>meaning</th></tr>\n";
    for a in &ledger.assumptions {
        let value = match &a.value {
            Value::String(s) => s.clone(),
            v => v.as_f64().map(num).unwrap_or_else(|| v.to_string()),
        };
        out += &format!("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", esc(&a.name), esc(&value), esc(&a.unit), esc(&a.note));
    }
    let c = &ledger.corpus;
    out += "</table></div>\n<h2>Measured on this run</h2>\n<table class=\"corpus\">\n";
    for (what, value) in [
        ("corpus tokens", num(c.corpus_tokens as f64)),
        ("chunks", num(c.n_chunks as f64)),
        ("mean chunk tokens", num(c.mean_chunk_tokens)),
        ("SCPT samples / tokens", format!("{} / {}", num(c.subset_samples as f64), num(c.subset_tokens as f64))),
        ("SSFT samples / tokens", format!("{} / {}", num(c.ssft_samples as f64), num(c.ssft_tokens as f64))),
        ("index size (bytes)", num(c.index_bytes as f64)),
        ("index build (seconds)", num(c.index_build_seconds)),
    ] {
        out += &format!("<tr><td>{}</td><td class=\"n\">{}</td></tr>\n", esc(what), esc(&value));
    }
    out += "</table>\n<h2>Published findings (context, not computed here)</h2>\n<ul class=\"literature\">\n";
    for l in &ledger.literature {
        out += &format!("<li><b>{}</b>: {} <span class=\"kw\">({})</span></li>\n", esc(&l.route), esc(&l.claim), esc(&l.source));
    }
    out += "</ul>\n</section>\n";
    out
}

/// A JSON value as table cell text: numbers rounded, strings as they are.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => num(u as f64),
            (None, Some(f)) if f.abs() < 10.0 && f != 0.0 => format!("{f:.3}"),
            (None, Some(f)) => num(f),
            _ => n.to_string(),
        },
        v => v.to_string(),
    }
}

const COVERAGE_COLUMNS: &[&str] = &[
    "budget",
    "method",
    "leaves_covered",
    "level1_covered",
    "facility_location",
    "question_similarity",
    "questions_covered",
    "duplicate_token_share",
    "median_passage_tokens",
];

fn eval_section(eval: &Value) -> String {
    let mut out = String::from("<section id=\"eval\">\n<h2>Evaluation</h2>\n");
    if let Some(rows) = eval.get("coverage").and_then(Value::as_array) {
        out += "<p class=\"note\">How well each selection method covers the taxonomy at each budget (from <code>eval.json</code>).</p>\n<div class=\"scroll\"><table class=\"coverage\">\n<tr>";
        for col in COVERAGE_COLUMNS {
            out += &format!("<th>{}</th>", esc(&col.replace('_', " ")));
        }
        out += "</tr>\n";
        for row in rows {
            out += "<tr>";
            for col in COVERAGE_COLUMNS {
                let v = row.get(*col).unwrap_or(&Value::Null);
                let class = if v.is_number() { " class=\"n\"" } else { "" };
                out += &format!("<td{class}>{}</td>", esc(&cell(v)));
            }
            out += "</tr>\n";
        }
        out += "</table></div>\n";
    }
    for key in ["labels", "retrieval"] {
        if let Some(v) = eval.get(key) {
            let text = serde_json::to_string_pretty(v).unwrap_or_default();
            out += &format!("<details><summary>{}</summary><pre>{}</pre></details>\n", esc(key), esc(&text));
        }
    }
    out += "</section>\n";
    out
}

fn run_section(inputs: &ReportInputs) -> String {
    let mut out = String::from("<section id=\"run\">\n<h2>Run</h2>\n");
    let Some(m) = &inputs.manifest else {
        out += "<p class=\"note\">No <code>manifest.json</code> was found in the run directory.</p>\n</section>\n";
        return out;
    };
    let bytes: u64 = m.inputs.iter().map(|f| f.bytes).sum();
    out += &format!(
        "<p>strata {} (run directory schema {}); {} input files, {} bytes; {} files skipped.</p>\n",
        esc(&m.tool_version),
        m.schema_version,
        num(m.inputs.len() as f64),
        num(bytes as f64),
        num(m.skipped.len() as f64)
    );
    out += "<div class=\"scroll\"><table class=\"stages\">\n<tr><th>stage</th><th>seconds</th><th>rows in</th><th>rows out</th><th>figures</th></tr>\n";
    for (name, s) in m.stages.iter() {
        let figures = m.stages.summary(name).map(|summary| summary.figures()).unwrap_or_default();
        let figures: Vec<String> = figures.iter().map(|(k, v)| format!("{k}: {}", cell(v))).collect();
        out += &format!(
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
            esc(name.as_str()),
            num(s.seconds),
            num(s.rows_in as f64),
            num(s.rows_out as f64),
            esc(&figures.join("; "))
        );
    }
    let config = serde_json::to_string_pretty(&m.config).unwrap_or_default();
    out +=
        &format!("</table></div>\n<details><summary>Configuration (resolved)</summary><pre>{}</pre></details>\n</section>\n", esc(&config));
    out
}
