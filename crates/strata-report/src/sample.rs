//! A small made-up run (a medicine corpus of 3 branches and 8 leaves) for the tests, the
//! `sample` example and a self-test of `tools/report-check.sh`. Its numbers are invented.

use crate::ReportInputs;
use serde_json::json;
use strata_core::labels::LabelQuality;
use strata_core::ledger::{Assumption, CorpusFigures, CostRow, Ledger, LiteratureNote};
use strata_core::manifest::{InputFile, Manifest, StageRun};
use strata_core::records::{PublishedChunk, TaxonomyNode};
use strata_core::summary::{ChunkSummary, EmbedSummary, IndexSummary, SelectSummary, TaxonomySummary};
use strata_core::{StageSummary, TaxonomyTree};

const TREE: &[(&str, &[(&str, &str)])] = &[
    (
        "Cardiology",
        &[
            ("Heart failure", "diuretics, ejection fraction, fluid"),
            ("Arrhythmias", "atrial fibrillation, ablation, ECG"),
            ("Hypertension", "blood pressure, ACE inhibitors"),
        ],
    ),
    ("Infectious disease", &[("Antibiotics", "penicillin, resistance, dosing"), ("Vaccines", "immunisation, schedule")]),
    ("Endocrinology", &[("Type 2 diabetes", "insulin, metformin, HbA1c"), ("Thyroid", "TSH, levothyroxine"), ("Adrenal", "cortisol")]),
];

/// The sample's inputs; `render(&sample_inputs())` is a complete page.
pub fn sample_inputs() -> ReportInputs {
    let mut taxonomy = vec![node(0, None, 0, "Medicine", vec![], "")];
    let mut chunks = Vec::new();
    let mut next_id = 1u32;
    for (b, (branch, leaves)) in TREE.iter().enumerate() {
        let branch_id = next_id;
        next_id += 1;
        taxonomy.push(node(branch_id, Some(0), 1, branch, vec![branch.to_string()], "clinical"));
        for (l, (leaf, keywords)) in leaves.iter().enumerate() {
            let leaf_id = next_id;
            next_id += 1;
            taxonomy.push(node(leaf_id, Some(branch_id), 2, leaf, vec![branch.to_string(), leaf.to_string()], keywords));
            for k in 0..(3 + (b * 5 + l * 3) % 7) {
                let tokens = 120 + ((b * 31 + l * 17 + k * 13) % 9) as u32 * 40;
                chunks.push(PublishedChunk {
                    chunk_id: format!("c{leaf_id}-{k}"),
                    doc_id: format!("doc{b}"),
                    source: format!("{branch}.md"),
                    ordinal: k as u32,
                    heading_path: vec![branch.to_string(), leaf.to_string()],
                    text: format!("{leaf}: passage {k}. Management depends on {keywords}; see the guideline for details."),
                    n_tokens: tokens,
                    byte_start: 0,
                    byte_end: 100,
                    node_id: leaf_id,
                    taxonomy_path: vec![branch.to_string(), leaf.to_string()],
                    duplicate_of: None,
                    selected: k == 0 && (b, l) != (2, 2),
                    passage_id: format!("c{leaf_id}-{k}#p0"),
                });
            }
        }
    }
    // Subtree totals, bottom-up (the file lists parents before children).
    for i in (0..taxonomy.len()).rev() {
        let id = taxonomy[i].node_id;
        let (own_c, own_t) = chunks.iter().filter(|c| c.node_id == id).fold((0u32, 0u64), |(n, t), c| (n + 1, t + c.n_tokens as u64));
        let (kid_c, kid_t) =
            taxonomy.iter().filter(|n| n.parent_id == Some(id)).fold((0u32, 0u64), |(n, t), k| (n + k.n_chunks, t + k.n_tokens));
        taxonomy[i].n_chunks = own_c + kid_c;
        taxonomy[i].n_tokens = own_t + kid_t;
        let medoid = chunks.iter().find(|c| c.node_id == id).map(|c| c.chunk_id.clone());
        taxonomy[i].medoid_chunk_id = medoid.or_else(|| {
            let first_kid = taxonomy.iter().find(|n| n.parent_id == Some(id))?;
            first_kid.medoid_chunk_id.clone()
        });
    }
    let corpus_tokens: u64 = chunks.iter().map(|c| c.n_tokens as u64).sum();

    let mut manifest = Manifest::new(json!({"domain": "medicine", "select": {"budget": 0.2}, "cost": {"model": "llama-8b"}}));
    manifest.inputs.push(InputFile { path: "medicine/cardiology.md".into(), bytes: 52_000, sha256: "0".repeat(64) });
    let ran = |seconds| StageRun { seconds, rows_in: 60, rows_out: 60, ..Default::default() };
    manifest.stages.insert(ran(1.2), StageSummary::Chunk(ChunkSummary { documents: 3, corpus_tokens, ..Default::default() }));
    manifest.stages.insert(ran(14.8), StageSummary::Embed(EmbedSummary { distinct_texts: 60, embedded_texts: 60, ..Default::default() }));
    manifest
        .stages
        .insert(ran(2.1), StageSummary::Taxonomy(TaxonomySummary { nodes: 12, leaves: 8, level1_nodes: 3, ..taxonomy_labels() }));
    let select = SelectSummary { budget_tokens: corpus_tokens / 5, corpus_tokens, leaves: 8, leaves_covered: 7, ..Default::default() };
    manifest.stages.insert(ran(0.3), StageSummary::Select(select));
    manifest.stages.insert(ran(0.9), StageSummary::Index(IndexSummary::default()));

    ReportInputs {
        manifest: Some(manifest),
        taxonomy: TaxonomyTree::new(taxonomy).expect("the sample's ids are a depth-first preorder"),
        ledger: ledger(corpus_tokens, chunks.len() as u64),
        n_chunks: chunks.len() as u64,
        chunks,
        eval: Some(json!({
            "coverage": [
                {"budget": 0.2, "method": "taxonomy", "leaves_covered": 7, "level1_covered": 3, "facility_location": 0.812,
                 "question_similarity": 0.64, "questions_covered": 0.7, "duplicate_token_share": 0.0, "median_passage_tokens": 240},
                {"budget": 0.2, "method": "random", "leaves_covered": 5, "level1_covered": 3, "facility_location": 0.701,
                 "question_similarity": 0.58, "questions_covered": 0.55, "duplicate_token_share": 0.02, "median_passage_tokens": 280}
            ],
            "labels": {"nmi": 0.41},
            "retrieval": {"recall_at_5": 0.62}
        })),
    }
}

fn node(id: u32, parent: Option<u32>, depth: u8, label: &str, path: Vec<String>, keywords: &str) -> TaxonomyNode {
    TaxonomyNode {
        node_id: id,
        parent_id: parent,
        depth,
        label: label.into(),
        keywords: keywords.split(", ").filter(|k| !k.is_empty()).map(String::from).collect(),
        path,
        ..Default::default()
    }
}

fn ledger(corpus_tokens: u64, n_chunks: u64) -> Ledger {
    let per_hour = 989e12 * 0.4 * 3600.0;
    let usd = |flops: f64| flops / per_hour * 2.5;
    let n = 8.03e9;
    let rag_flops = 2.0 * n * 5.0 * 260.0;
    let row = |route: &str, name: &str, tokens: f64, flops: f64, extra_tokens: f64, extra_flops: f64| CostRow {
        route: route.into(),
        name: name.into(),
        trains: flops > 0.0,
        training_tokens: tokens as u64,
        training_flops: flops,
        gpu_hours: flops / per_hour,
        cost_usd: usd(flops),
        trainable_params: if flops > 0.0 { n as u64 } else { 0 },
        extra_prompt_tokens_per_query: extra_tokens,
        extra_flops_per_query: extra_flops,
        extra_cost_usd_per_query: usd(extra_flops),
        break_even_queries_vs_rag: (flops > 0.0).then(|| flops / (rag_flops - extra_flops)),
        break_even_days_vs_rag: (flops > 0.0).then(|| flops / (rag_flops - extra_flops) / 1000.0),
        note: format!("sample row for {route}"),
    };
    let d = corpus_tokens as f64 * 1e4;
    Ledger {
        llm: None,
        assumptions: vec![
            Assumption { name: "model".into(), value: json!("llama-8b"), unit: String::new(), note: "model".into() },
            Assumption { name: "mfu".into(), value: json!(0.4), unit: String::new(), note: "utilisation".into() },
        ],
        corpus: CorpusFigures {
            corpus_tokens,
            subset_tokens: corpus_tokens / 4,
            subset_samples: 12,
            ssft_tokens: 2_000,
            ssft_samples: 30,
            mean_chunk_tokens: 260.0,
            n_chunks,
            index_bytes: 90_000,
            index_build_seconds: 0.9,
        },
        rows: vec![
            row("prompting", "Prompting only", 0.0, 0.0, 500.0, 2.0 * n * 500.0),
            row("rag", "RAG over the index", 0.0, 0.0, 1300.0, rag_flops),
            row("cpt", "Continual pre-training, full corpus", d, 6.0 * n * d, 0.0, 0.0),
            row("scpt", "SCPT on the budgeted subset", d * 0.003, 6.0 * n * d * 0.003, 0.0, 0.0),
            row("lora", "LoRA on the subset", d * 0.003, 4.0 * n * d * 0.003, 0.0, 0.0),
            row("proxy", "Proxy-tuning with a small expert", d, 6.0 * 1.24e9 * d, 0.0, 4.0 * 1.24e9 * 200.0),
        ],
        literature: vec![LiteratureNote {
            route: "scpt".into(),
            claim: "Half of MMedLM2's MMedBench improvement with 0.3% of its training corpus's quantity (another corpus, another method)."
                .into(),
            source: "Liu et al., arXiv 2407.16724".into(),
        }],
    }
}

/// The sample's label figures: 11 labels below the root, 10 of them found in their text.
fn taxonomy_labels() -> TaxonomySummary {
    let labels = LabelQuality { labels: 11, verbatim: 10, redundant: 1, alike_sibling_pairs: 0 };
    TaxonomySummary { heading_labels: 4, phrase_labels: 6, keyword_labels: 1, labels, ..Default::default() }
}
