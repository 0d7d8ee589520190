//! The ledger itself: one row per route from the corpus figures and the assumptions.
//! Every formula is in `FORMULAS.md`; the tests below check them against hand calculations.

use crate::config::CostConfig;
use crate::presets;
use crate::CostError;
use serde_json::{json, Value};
use strata_core::ledger::{Assumption, CorpusFigures, CostRow, Ledger, LiteratureNote};

/// FLOPs -> GPU-hours -> USD at the configured peak, utilisation and price.
struct Pricing {
    flops_per_gpu_hour: f64,
    usd_per_gpu_hour: f64,
}

impl Pricing {
    fn gpu_hours(&self, flops: f64) -> f64 {
        flops / self.flops_per_gpu_hour
    }
    fn usd(&self, flops: f64) -> f64 {
        self.gpu_hours(flops) * self.usd_per_gpu_hour
    }
}

/// The parts of a row that differ between routes; pricing fills in the rest.
struct Route {
    id: &'static str,
    name: &'static str,
    /// Tokens through the trainer, all epochs together (0 for routes that train nothing).
    training_tokens: f64,
    training_flops: f64,
    trainable_params: u64,
    extra_prompt_tokens: f64,
    extra_flops_per_query: f64,
    note: String,
}

/// Computes the ledger for `figures` under `config`. Pure: no files, no clock.
/// Long: one block per route, in the order of FORMULAS.md, so each reads beside its formula.
pub fn compute(config: &CostConfig, figures: CorpusFigures) -> Result<Ledger, CostError> {
    config.validate()?;
    let model = config.model_shape()?;
    let proxy = presets::model(&config.proxy_model)?;
    let (gpu_desc, tflops) = config.gpu_peak()?;
    let pricing = Pricing { flops_per_gpu_hour: tflops * 1e12 * config.mfu * 3600.0, usd_per_gpu_hour: config.price_per_gpu_hour };

    let n = model.params;
    let corpus = figures.corpus_tokens as f64;
    let subset = figures.subset_tokens as f64;
    let ssft = figures.ssft_tokens as f64;
    let (e, es) = (config.epochs, config.subset_epochs);
    let rag_tokens = config.top_k as f64 * figures.mean_chunk_tokens;
    let answer = config.answer_tokens as f64;

    let routes = vec![
        Route {
            id: "prompting",
            name: "Prompting only",
            training_tokens: 0.0,
            training_flops: 0.0,
            trainable_params: 0,
            extra_prompt_tokens: config.prompt_tokens as f64,
            extra_flops_per_query: 2.0 * n * config.prompt_tokens as f64,
            note: "trains nothing; instructions in the prompt cannot add knowledge the model lacks".into(),
        },
        Route {
            id: "rag",
            name: "RAG over the index",
            training_tokens: 0.0,
            training_flops: 0.0,
            trainable_params: 0,
            extra_prompt_tokens: rag_tokens,
            extra_flops_per_query: 2.0 * n * rag_tokens,
            note: format!(
                "top-{} chunks of {:.0} tokens each per query; index of {:.1} MB built in {:.1} s on CPU (measured, not priced)",
                config.top_k,
                figures.mean_chunk_tokens,
                figures.index_bytes as f64 / 1e6,
                figures.index_build_seconds
            ),
        },
        Route {
            id: "cpt",
            name: "Continual pre-training, full corpus",
            training_tokens: corpus * e,
            training_flops: 6.0 * n * corpus * e,
            trainable_params: n.round() as u64,
            extra_prompt_tokens: 0.0,
            extra_flops_per_query: 0.0,
            note: format!("all weights, every corpus token, {e} epoch(s)"),
        },
        Route {
            id: "scpt",
            name: "SCPT on the budgeted subset",
            training_tokens: subset * es,
            training_flops: 6.0 * n * subset * es,
            trainable_params: n.round() as u64,
            extra_prompt_tokens: 0.0,
            extra_flops_per_query: 0.0,
            note: format!(
                "all weights on the {} structure-aware samples (prompt + response tokens), {es} epoch(s)",
                figures.subset_samples
            ),
        },
        Route {
            id: "lora",
            name: "LoRA on the subset",
            training_tokens: subset * es,
            training_flops: 4.0 * n * subset * es,
            trainable_params: model.lora_params(config.lora_rank),
            extra_prompt_tokens: 0.0,
            extra_flops_per_query: 0.0,
            note: format!(
                "rank {} on q,k,v,o,gate,up,down of every layer; no weight gradients for the frozen base (about 2/3 of full training); merged for serving",
                config.lora_rank
            ),
        },
        Route {
            id: "svf",
            name: "Singular-value fine-tuning (Transformer²)",
            training_tokens: subset * es,
            training_flops: 4.0 * n * subset * es,
            trainable_params: model.svf_params(),
            extra_prompt_tokens: 0.0,
            extra_flops_per_query: 0.0,
            note: "one scale per singular value of q,k,v,o,gate,up,down; same FLOPs estimate as LoRA".into(),
        },
        Route {
            id: "proxy",
            name: "Proxy-tuning with a small expert",
            training_tokens: corpus * e,
            training_flops: 6.0 * proxy.params * corpus * e,
            trainable_params: proxy.params.round() as u64,
            extra_prompt_tokens: 0.0,
            extra_flops_per_query: 2.0 * 2.0 * proxy.params * answer,
            note: format!(
                "{} trained on the full corpus; at decoding the tuned and untuned small models run beside the large one for each of {answer} answer tokens",
                config.proxy_model
            ),
        },
        Route {
            id: "dpo",
            name: "DPO on structure QA pairs",
            training_tokens: 2.0 * ssft * es,
            training_flops: 2.0 * (6.0 + 2.0) * n * ssft * es,
            trainable_params: n.round() as u64,
            extra_prompt_tokens: 0.0,
            extra_flops_per_query: 0.0,
            note: format!(
                "the {} SSFT samples as chosen answers, each with a rejected answer of equal length; policy forward+backward plus frozen reference forward",
                figures.ssft_samples
            ),
        },
    ];

    let mut rows: Vec<CostRow> = routes.into_iter().map(|r| priced(r, &pricing)).collect();
    let rag_per_query = pricing.usd(2.0 * n * rag_tokens);
    for row in rows.iter_mut().filter(|r| r.trains) {
        let saved_per_query = rag_per_query - row.extra_cost_usd_per_query;
        if saved_per_query > 0.0 {
            let queries = row.cost_usd / saved_per_query;
            row.break_even_queries_vs_rag = Some(queries);
            row.break_even_days_vs_rag = (config.queries_per_day > 0.0).then(|| queries / config.queries_per_day);
        }
    }

    Ok(Ledger {
        assumptions: assumptions(config, &model, proxy.params, gpu_desc, tflops),
        corpus: figures,
        rows,
        literature: literature(),
        llm: None,
    })
}

fn priced(r: Route, pricing: &Pricing) -> CostRow {
    CostRow {
        route: r.id.into(),
        name: r.name.into(),
        trains: r.training_flops > 0.0 || r.trainable_params > 0,
        training_tokens: r.training_tokens.round() as u64,
        training_flops: r.training_flops,
        gpu_hours: pricing.gpu_hours(r.training_flops),
        cost_usd: pricing.usd(r.training_flops),
        trainable_params: r.trainable_params,
        extra_prompt_tokens_per_query: r.extra_prompt_tokens,
        extra_flops_per_query: r.extra_flops_per_query,
        extra_cost_usd_per_query: pricing.usd(r.extra_flops_per_query),
        break_even_queries_vs_rag: None,
        break_even_days_vs_rag: None,
        note: r.note,
    }
}

fn assumptions(c: &CostConfig, m: &presets::ModelShape, proxy_params: f64, gpu_desc: &str, tflops: f64) -> Vec<Assumption> {
    let a =
        |name: &str, value: Value, unit: &str, note: &str| Assumption { name: name.into(), value, unit: unit.into(), note: note.into() };
    vec![
        a("model", json!(c.model), "", "model every route trains or serves"),
        a("params", json!(m.params.round() as u64), "parameters", "N in the FLOPs formulas (embeddings included)"),
        a("layers", json!(m.layers), "", "transformer layers (adapter parameter counts)"),
        a("hidden", json!(m.hidden), "", "model width"),
        a("kv_dim", json!(m.kv_dim), "", "key/value projection width (grouped-query attention)"),
        a("ffn", json!(m.ffn), "", "MLP width"),
        a("gpu", json!(c.gpu), "", gpu_desc),
        a("gpu_tflops", json!(tflops), "TFLOP/s", "dense bf16 peak, no sparsity"),
        a("mfu", json!(c.mfu), "", "share of the peak achieved, for training and serving alike"),
        a("price_per_gpu_hour", json!(c.price_per_gpu_hour), "USD", "rented GPU-hour"),
        a("epochs", json!(c.epochs), "", "passes over the full corpus (continual pre-training, proxy expert)"),
        a("subset_epochs", json!(c.subset_epochs), "", "passes over the subset or SSFT set (SCPT, LoRA, SVF, DPO)"),
        a("top_k", json!(c.top_k), "chunks", "chunks RAG adds to each prompt"),
        a("queries_per_day", json!(c.queries_per_day), "queries", "to express break-even in days"),
        a("lora_rank", json!(c.lora_rank), "", "LoRA rank on q,k,v,o,gate,up,down"),
        a("proxy_model", json!(c.proxy_model), "", "small expert of proxy-tuning"),
        a("proxy_params", json!(proxy_params.round() as u64), "parameters", "N_s of the small expert"),
        a("prompt_tokens", json!(c.prompt_tokens), "tokens", "extra prompt of prompting only"),
        a("answer_tokens", json!(c.answer_tokens), "tokens", "generated tokens per answer (proxy-tuning)"),
    ]
}

/// Published findings, kept apart from the computed numbers.
pub fn literature() -> Vec<LiteratureNote> {
    let l = |route: &str, claim: &str, source: &str| LiteratureNote { route: route.into(), claim: claim.into(), source: source.into() };
    vec![
        l(
            "scpt",
            "On MMedBench, models trained with StructTuning on its own small medical corpus were compared with MMedLM2, conventional continual pre-training on a corpus hundreds of times larger. In the paper's words: \"our method matches 50% of the improvement displayed by the state-of-the-art MMedLM2 on MMedBench, but with only 0.3% quantity of the training corpus\" (v1), and \"comparable improvement against the state-of-the-art MMedLM2 on MMedBench, while significantly reducing the training costs to 5%\" (v2). Two different corpora and methods, not a subset of one corpus against the whole: it does not say what a 0.3% subset of your corpus buys against your full corpus.",
            "Liu et al., Structure-aware Domain Knowledge Injection for Large Language Models (StructTuning), ACL 2025, arXiv 2407.16724",
        ),
        l(
            "lora",
            "Low-rank adapters matched full fine-tuning on many downstream tasks with far fewer trainable parameters.",
            "Hu et al., LoRA: Low-Rank Adaptation of Large Language Models, 2021, arXiv 2106.09685",
        ),
        l(
            "lora",
            "In continued pre-training and instruction tuning on code and math, LoRA learned less than full fine-tuning but forgot less of the base model's abilities.",
            "Biderman et al., LoRA Learns Less and Forgets Less, 2024, arXiv 2405.09673",
        ),
        l(
            "svf",
            "Singular-value fine-tuning trains only a scale per singular value of each weight matrix, far fewer parameters than LoRA; it was evaluated for task adaptation, not for adding new domain knowledge.",
            "Sun et al., Transformer-Squared: Self-adaptive LLMs, 2025, arXiv 2501.06252",
        ),
        l(
            "proxy",
            "Steering a large model at decoding time by the logit difference of a tuned and an untuned small model closed much of the gap to directly tuning the large model, including for domain adaptation.",
            "Liu et al., Tuning Language Models by Proxy, 2024, arXiv 2401.08565",
        ),
        l(
            "rag",
            "Retrieval-augmented generation combines a generator with a dense index of documents; its knowledge can be updated by replacing the index, without retraining.",
            "Lewis et al., Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks, 2020, arXiv 2005.11401",
        ),
        l(
            "rag",
            "On the knowledge-injection tasks studied, RAG outperformed unsupervised fine-tuning, for both knowledge seen in pre-training and new knowledge.",
            "Ovadia et al., Fine-Tuning or Retrieval? Comparing Knowledge Injection in LLMs, 2023, arXiv 2312.05934",
        ),
        l(
            "dpo",
            "Direct preference optimisation trains a policy on chosen/rejected pairs against a frozen reference model, without a reward model or reinforcement learning.",
            "Rafailov et al., Direct Preference Optimization, 2023, arXiv 2305.18290",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> CorpusFigures {
        CorpusFigures {
            corpus_tokens: 1_000_000,
            subset_tokens: 10_000,
            subset_samples: 40,
            ssft_tokens: 5_000,
            ssft_samples: 20,
            mean_chunk_tokens: 200.0,
            n_chunks: 5_000,
            index_bytes: 123_456,
            index_build_seconds: 1.5,
        }
    }

    fn row<'a>(ledger: &'a Ledger, id: &str) -> &'a CostRow {
        ledger.rows.iter().find(|r| r.route == id).expect("route present")
    }

    fn close(actual: f64, expected: f64) {
        close_to(actual, expected, 1e-12);
    }

    fn close_to(actual: f64, expected: f64, rel: f64) {
        assert!((actual - expected).abs() <= rel * expected.abs(), "{actual} != {expected}");
    }

    /// H100 989 TFLOP/s at 40% MFU: 989e12 × 0.4 × 3600 = 1.42416e18 FLOPs per GPU-hour.
    const FLOPS_PER_HOUR: f64 = 1.42416e18;

    #[test]
    fn training_flops_match_hand_calculations() {
        let ledger = compute(&CostConfig::default(), figures()).expect("ledger");
        // full corpus: 6 × 8.03e9 × 1e6 × 1 = 4.818e16
        close(row(&ledger, "cpt").training_flops, 4.818e16);
        // subset: 6 × 8.03e9 × 1e4 × 3 = 1.4454e15
        close(row(&ledger, "scpt").training_flops, 1.4454e15);
        // LoRA and SVF: 4 × 8.03e9 × 1e4 × 3 = 9.636e14
        close(row(&ledger, "lora").training_flops, 9.636e14);
        close(row(&ledger, "svf").training_flops, 9.636e14);
        // proxy expert: 6 × 1.24e9 × 1e6 × 1 = 7.44e15
        close(row(&ledger, "proxy").training_flops, 7.44e15);
        // DPO: 2 × (6 + 2) × 8.03e9 × 5e3 × 3 = 1.9272e15
        close(row(&ledger, "dpo").training_flops, 1.9272e15);
        assert_eq!(row(&ledger, "dpo").training_tokens, 30_000); // 2 × 5000 × 3
        assert_eq!(row(&ledger, "scpt").training_tokens, 30_000); // 10000 × 3
        assert_eq!(row(&ledger, "cpt").training_tokens, 1_000_000);
        assert_eq!(row(&ledger, "rag").training_flops, 0.0);
        assert!(!row(&ledger, "rag").trains && !row(&ledger, "prompting").trains);
    }

    #[test]
    fn gpu_hours_and_money_match_hand_calculations() {
        let ledger = compute(&CostConfig::default(), figures()).expect("ledger");
        let cpt = row(&ledger, "cpt");
        // 4.818e16 / 1.42416e18 = 0.033830... GPU-hours; × 2.5 USD
        close(cpt.gpu_hours, 4.818e16 / 1.42416e18);
        close(cpt.cost_usd, 4.818e16 / 1.42416e18 * 2.5);
        close_to(cpt.gpu_hours, 0.033_830_468_5, 1e-9); // about 2 GPU-minutes
    }

    #[test]
    fn per_query_figures_match_hand_calculations() {
        let ledger = compute(&CostConfig::default(), figures()).expect("ledger");
        let rag = row(&ledger, "rag");
        // 5 chunks × 200 tokens = 1000 tokens; 2 × 8.03e9 × 1000 = 1.606e13 FLOPs
        close(rag.extra_prompt_tokens_per_query, 1000.0);
        close(rag.extra_flops_per_query, 1.606e13);
        close(rag.extra_cost_usd_per_query, 1.606e13 / FLOPS_PER_HOUR * 2.5);
        // prompting: 2 × 8.03e9 × 500 = 8.03e12
        close(row(&ledger, "prompting").extra_flops_per_query, 8.03e12);
        // proxy: 2 × 2 × 1.24e9 × 200 = 9.92e11
        close(row(&ledger, "proxy").extra_flops_per_query, 9.92e11);
        assert_eq!(row(&ledger, "lora").extra_flops_per_query, 0.0);
    }

    #[test]
    fn break_even_against_rag_matches_hand_calculations() {
        let ledger = compute(&CostConfig::default(), figures()).expect("ledger");
        // same GPU prices on both sides, so break-even = training FLOPs / RAG FLOPs per query:
        // cpt 4.818e16 / 1.606e13 = 3000; scpt 1.4454e15 / 1.606e13 = 90; lora 9.636e14 / 1.606e13 = 60
        close(row(&ledger, "cpt").break_even_queries_vs_rag.expect("cpt"), 3000.0);
        close(row(&ledger, "scpt").break_even_queries_vs_rag.expect("scpt"), 90.0);
        close(row(&ledger, "lora").break_even_queries_vs_rag.expect("lora"), 60.0);
        // at 1000 queries a day: 3 days
        close(row(&ledger, "cpt").break_even_days_vs_rag.expect("days"), 3.0);
        // proxy still pays 9.92e11 per query: 7.44e15 / (1.606e13 - 9.92e11) = 493.76...
        close(row(&ledger, "proxy").break_even_queries_vs_rag.expect("proxy"), 7.44e15 / 1.5068e13);
        assert_eq!(row(&ledger, "rag").break_even_queries_vs_rag, None);
        assert_eq!(row(&ledger, "prompting").break_even_queries_vs_rag, None);
    }

    #[test]
    fn trainable_params_come_from_the_shapes() {
        let ledger = compute(&CostConfig::default(), figures()).expect("ledger");
        assert_eq!(row(&ledger, "lora").trainable_params, 41_943_040);
        assert_eq!(row(&ledger, "svf").trainable_params, 720_896);
        assert_eq!(row(&ledger, "cpt").trainable_params, 8_030_000_000);
        assert_eq!(row(&ledger, "proxy").trainable_params, 1_240_000_000);
    }

    #[test]
    fn overrides_and_gpu_presets_apply() {
        let config =
            CostConfig { model: "llama-70b".into(), gpu: "a100".into(), mfu: 0.5, price_per_gpu_hour: 1.0, ..CostConfig::default() };
        let ledger = compute(&config, figures()).expect("ledger");
        // 6 × 70.6e9 × 1e6 = 4.236e17 FLOPs; / (312e12 × 0.5 × 3600 = 5.616e17) = 0.754273... h
        close(row(&ledger, "cpt").gpu_hours, 4.236e17 / 5.616e17);
        let config = CostConfig { params: Some(1e9), gpu_tflops: Some(100.0), ..CostConfig::default() };
        let ledger = compute(&config, figures()).expect("ledger");
        // 6 × 1e9 × 1e6 = 6e15; / (100e12 × 0.4 × 3600 = 1.44e17)
        close(row(&ledger, "cpt").gpu_hours, 6e15 / 1.44e17);
    }

    #[test]
    fn every_assumption_is_listed_and_rows_are_enough() {
        let ledger = compute(&CostConfig::default(), figures()).expect("ledger");
        let names: Vec<_> = ledger.assumptions.iter().map(|a| a.name.as_str()).collect();
        for key in ["model", "params", "gpu", "gpu_tflops", "mfu", "price_per_gpu_hour", "epochs", "top_k", "lora_rank"] {
            assert!(names.contains(&key), "{key} missing");
        }
        assert!(ledger.rows.len() >= 5);
        let json = serde_json::to_value(&ledger).expect("json");
        assert!(json["rows"].as_array().is_some_and(|r| r.len() >= 5));
    }

    #[test]
    fn bad_settings_are_rejected() {
        let e = compute(&CostConfig { mfu: 0.0, ..CostConfig::default() }, figures()).expect_err("mfu");
        assert!(e.to_string().contains("`mfu`"), "{e}");
        let e = compute(&CostConfig { model: "x".into(), ..CostConfig::default() }, figures()).expect_err("model");
        assert!(e.to_string().contains("`llama-8b`"), "{e}");
        let e = compute(&CostConfig { proxy_model: "y".into(), ..CostConfig::default() }, figures()).expect_err("proxy");
        assert!(e.to_string().contains("`y`"), "{e}");
    }

    #[test]
    fn empty_corpus_gives_no_break_even() {
        let ledger = compute(&CostConfig::default(), CorpusFigures::default()).expect("ledger");
        assert!(ledger.rows.iter().all(|r| r.break_even_queries_vs_rag.is_none()));
    }
}
