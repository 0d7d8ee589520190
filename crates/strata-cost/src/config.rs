//! `CostConfig`: every assumption of the ledger, each with a stated default.

use crate::presets::{self, ModelShape};
use crate::CostError;
use serde::{Deserialize, Serialize};

/// The assumptions of the cost ledger (the `[cost]` table of a recipe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    /// Model the routes train or serve: a preset name (`llama-1b`, `llama-8b`, `llama-70b`).
    pub model: String,
    /// Overrides the preset's total parameter count (the `N` of the formulas).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<f64>,
    /// Overrides the preset's number of transformer layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<u32>,
    /// Overrides the preset's hidden (model) width.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<u32>,
    /// Overrides the preset's key/value projection width (kv heads × head dim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_dim: Option<u32>,
    /// Overrides the preset's feed-forward (MLP) width.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ffn: Option<u32>,
    /// GPU preset (`a100`, `h100`, `h200`, `l40s`, `rtx4090`), for its dense bf16 peak.
    pub gpu: String,
    /// Overrides the GPU's dense bf16 peak, in TFLOP/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_tflops: Option<f64>,
    /// Model FLOPs utilisation: the share of the peak that training and serving achieve (0-1].
    pub mfu: f64,
    /// Price of one GPU-hour, in USD.
    pub price_per_gpu_hour: f64,
    /// Passes over the full corpus for continual pre-training and the proxy expert (default 1).
    pub epochs: f64,
    /// Passes over the budgeted subset or the SSFT set for SCPT, LoRA, SVF and DPO (default 3).
    pub subset_epochs: f64,
    /// Chunks RAG puts into each prompt.
    pub top_k: u32,
    /// Queries per day, to express break-even points in days.
    pub queries_per_day: f64,
    /// LoRA rank on every attention and MLP matrix.
    pub lora_rank: u32,
    /// Preset of the small expert that proxy-tuning trains.
    pub proxy_model: String,
    /// Extra prompt tokens of "prompting only" (instructions and hand-written domain notes).
    pub prompt_tokens: u32,
    /// Tokens of a generated answer (proxy-tuning runs two small models for each).
    pub answer_tokens: u32,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            model: "llama-8b".into(),
            params: None,
            layers: None,
            hidden: None,
            kv_dim: None,
            ffn: None,
            gpu: "h100".into(),
            gpu_tflops: None,
            mfu: 0.4,
            price_per_gpu_hour: 2.5,
            epochs: 1.0,
            subset_epochs: 3.0,
            top_k: 5,
            queries_per_day: 1000.0,
            lora_rank: 16,
            proxy_model: "llama-1b".into(),
            prompt_tokens: 500,
            answer_tokens: 200,
        }
    }
}

impl CostConfig {
    /// The model preset with this configuration's overrides applied.
    pub fn model_shape(&self) -> Result<ModelShape, CostError> {
        let preset = presets::model(&self.model)?;
        Ok(ModelShape {
            params: self.params.unwrap_or(preset.params),
            layers: self.layers.unwrap_or(preset.layers),
            hidden: self.hidden.unwrap_or(preset.hidden),
            kv_dim: self.kv_dim.unwrap_or(preset.kv_dim),
            ffn: self.ffn.unwrap_or(preset.ffn),
        })
    }

    /// `(description, dense bf16 TFLOP/s)` of the GPU, the override applied.
    pub fn gpu_peak(&self) -> Result<(&'static str, f64), CostError> {
        let (desc, tflops) = presets::gpu(&self.gpu)?;
        Ok(match self.gpu_tflops {
            Some(t) => ("custom peak (gpu_tflops)", t),
            None => (desc, tflops),
        })
    }

    /// Rejects values that would make the ledger meaningless (zero throughput, negative price).
    pub fn validate(&self) -> Result<(), CostError> {
        let bad = |field: &'static str, reason: &str| Err(CostError::Invalid { field, reason: reason.into() });
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !(positive(self.mfu) && self.mfu <= 1.0) {
            return bad("mfu", "must be in (0, 1]");
        }
        if !(self.price_per_gpu_hour.is_finite() && self.price_per_gpu_hour >= 0.0) {
            return bad("price_per_gpu_hour", "must be zero or more");
        }
        for (field, value) in [("epochs", self.epochs), ("subset_epochs", self.subset_epochs)] {
            if !positive(value) {
                return bad(field, "must be more than zero");
            }
        }
        if !(self.queries_per_day.is_finite() && self.queries_per_day >= 0.0) {
            return bad("queries_per_day", "must be zero or more");
        }
        if self.params.is_some_and(|p| !positive(p)) {
            return bad("params", "must be more than zero");
        }
        if self.gpu_tflops.is_some_and(|t| !positive(t)) {
            return bad("gpu_tflops", "must be more than zero");
        }
        Ok(())
    }
}
