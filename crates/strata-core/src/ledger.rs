//! The cost ledger (`cost.json`): its rows and assumptions, shared by `strata-cost` (which
//! computes it) and `strata-report` (which draws it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The whole `cost.json`: every assumption, the corpus figures the rows were computed from,
/// one row per knowledge-injection route, and published findings kept apart from the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub assumptions: Vec<Assumption>,
    pub corpus: CorpusFigures,
    pub rows: Vec<CostRow>,
    pub literature: Vec<LiteratureNote>,
    /// What the recipe's LLM was asked and answered, absent without an `[llm]` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmUsage>,
}

/// The LLM's share of the run: requests and tokens, for titles and for question answering,
/// with the question answering per thousand passages (what a larger corpus will take).
/// Cached replies count the tokens their call took: this is what the data cost to make.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmUsage {
    pub model: String,
    pub titles: Option<crate::llm::LlmCalls>,
    pub qa: Option<crate::llm::LlmCalls>,
    /// Passages asked about, and the question answering's tokens per thousand of them.
    pub qa_passages: u64,
    pub qa_prompt_tokens_per_1k_passages: f64,
    pub qa_completion_tokens_per_1k_passages: f64,
}

/// One input of the computation with its value, e.g. `mfu = 0.4`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assumption {
    pub name: String,
    pub value: Value,
    pub unit: String,
    pub note: String,
}

/// What the ledger measured on this run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpusFigures {
    /// Tokens of all chunks of the corpus.
    pub corpus_tokens: u64,
    /// Tokens the trainer sees on the budgeted subset: prompt + response of every SCPT sample.
    pub subset_tokens: u64,
    pub subset_samples: u64,
    /// Tokens of every SSFT sample (prompt + response): the source of the DPO pairs.
    #[serde(default)]
    pub ssft_tokens: u64,
    #[serde(default)]
    pub ssft_samples: u64,
    pub mean_chunk_tokens: f64,
    pub n_chunks: u64,
    /// Size of the search index on disk.
    pub index_bytes: u64,
    /// Wall-clock seconds the index stage took (0 when unknown).
    pub index_build_seconds: f64,
}

/// One knowledge-injection route on this corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRow {
    /// Short id, e.g. `rag`, `scpt`.
    pub route: String,
    /// Human-readable name.
    pub name: String,
    /// Whether the route trains any weights.
    pub trains: bool,
    /// Tokens passed through the trainer, all epochs together.
    pub training_tokens: u64,
    pub training_flops: f64,
    pub gpu_hours: f64,
    /// Money of the training (USD).
    pub cost_usd: f64,
    pub trainable_params: u64,
    /// Prompt tokens each query carries on top of the question (context, instructions).
    pub extra_prompt_tokens_per_query: f64,
    /// Inference FLOPs each query costs on top of answering the bare question.
    pub extra_flops_per_query: f64,
    /// Money of `extra_flops_per_query` (USD) at the same GPU assumptions.
    #[serde(default)]
    pub extra_cost_usd_per_query: f64,
    /// Queries after which this route is cheaper in total than RAG; null when it never is
    /// or the comparison does not apply (RAG itself, prompting).
    pub break_even_queries_vs_rag: Option<f64>,
    /// `break_even_queries_vs_rag` in days at the assumed queries per day.
    #[serde(default)]
    pub break_even_days_vs_rag: Option<f64>,
    pub note: String,
}

impl CostRow {
    /// Total money after `queries` queries: training plus extra inference.
    pub fn cumulative_cost_usd(&self, queries: f64) -> f64 {
        self.cost_usd + queries * self.extra_cost_usd_per_query
    }
}

/// A published finding about a route: context for the numbers, never an input to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiteratureNote {
    pub route: String,
    pub claim: String,
    pub source: String,
}

/// A ledger number for people, in a few significant digits: `0`, `12.5`, `3,000`, `4.82e16`.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 {
        "0".into()
    } else if !(1e-3..1e7).contains(&a) {
        format!("{x:.2e}")
    } else if a >= 1000.0 || x.fract() == 0.0 {
        group_thousands(x.round() as i64)
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(4.818e16), "4.82e16");
        assert_eq!(fmt_num(3000.0), "3,000");
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(700.0), "700");
        assert_eq!(fmt_num(0.0338), "0.034");
        assert_eq!(fmt_num(0.00001), "1.00e-5");
    }
}
