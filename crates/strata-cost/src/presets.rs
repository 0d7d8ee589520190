//! Model shapes and GPU peaks the ledger can be asked for by name.

use crate::CostError;

/// The shape of a decoder-only transformer, enough to count its adapter parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelShape {
    /// All parameters, embeddings included (the `N` of `6·N·D`).
    pub params: f64,
    pub layers: u32,
    pub hidden: u32,
    /// Width of the key and value projections (grouped-query attention: kv heads × head dim).
    pub kv_dim: u32,
    pub ffn: u32,
}

/// Model presets: `(name, shape)`; shapes from the models' published configurations.
pub const MODELS: &[(&str, ModelShape)] = &[
    // Llama-3.2-1B: 32 query heads, 8 kv heads of 64 dims.
    ("llama-1b", ModelShape { params: 1.24e9, layers: 16, hidden: 2048, kv_dim: 512, ffn: 8192 }),
    // Llama-3.1-8B: 32 query heads, 8 kv heads of 128 dims.
    ("llama-8b", ModelShape { params: 8.03e9, layers: 32, hidden: 4096, kv_dim: 1024, ffn: 14336 }),
    // Llama-3.1-70B: 64 query heads, 8 kv heads of 128 dims.
    ("llama-70b", ModelShape { params: 70.6e9, layers: 80, hidden: 8192, kv_dim: 1024, ffn: 28672 }),
];

/// GPU presets: `(name, description, dense bf16 peak in TFLOP/s)` from the vendors' data sheets.
pub const GPUS: &[(&str, &str, f64)] = &[
    ("a100", "NVIDIA A100 SXM", 312.0),
    ("h100", "NVIDIA H100 SXM", 989.0),
    ("h200", "NVIDIA H200 SXM", 989.0),
    ("l40s", "NVIDIA L40S", 362.0),
    ("rtx4090", "NVIDIA GeForce RTX 4090", 165.0),
];

fn names<T>(table: &[(&str, T)]) -> String {
    table.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// The model preset called `name`, or an error listing the valid names.
pub fn model(name: &str) -> Result<ModelShape, CostError> {
    MODELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, shape)| *shape)
        .ok_or_else(|| CostError::UnknownModel { name: name.to_string(), valid: names(MODELS) })
}

/// `(description, TFLOP/s)` of the GPU preset called `name`, or an error listing the valid names.
pub fn gpu(name: &str) -> Result<(&'static str, f64), CostError> {
    GPUS.iter().find(|(n, _, _)| *n == name).map(|(_, d, t)| (*d, *t)).ok_or_else(|| {
        let valid = GPUS.iter().map(|(n, _, _)| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        CostError::UnknownGpu { name: name.to_string(), valid }
    })
}

impl ModelShape {
    /// `(d_in, d_out)` of the matrices adapters touch in one layer: q, k, v, o, gate, up, down.
    pub fn layer_matrices(&self) -> [(u64, u64); 7] {
        let (h, kv, f) = (self.hidden as u64, self.kv_dim as u64, self.ffn as u64);
        [(h, h), (h, kv), (h, kv), (h, h), (h, f), (h, f), (f, h)]
    }

    /// LoRA of rank `r` on every adapted matrix: `r·(d_in + d_out)` each, over all layers.
    pub fn lora_params(&self, rank: u32) -> u64 {
        let per_layer: u64 = self.layer_matrices().iter().map(|(i, o)| rank as u64 * (i + o)).sum();
        per_layer * self.layers as u64
    }

    /// Singular-value fine-tuning: one scale per singular value, `min(d_in, d_out)` each.
    pub fn svf_params(&self) -> u64 {
        let per_layer: u64 = self.layer_matrices().iter().map(|(i, o)| *i.min(o)).sum();
        per_layer * self.layers as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_params_of_llama_8b_by_hand() {
        let m = model("llama-8b").expect("preset");
        // per layer, r·(d_in+d_out): q 8192, k 5120, v 5120, o 8192, gate/up/down 18432 each
        // = 81920; × r 16 = 1,310,720; × 32 layers = 41,943,040.
        assert_eq!(m.lora_params(16), 41_943_040);
    }

    #[test]
    fn svf_params_of_llama_8b_by_hand() {
        let m = model("llama-8b").expect("preset");
        // per layer min(d_in,d_out): 4096 + 1024 + 1024 + 4096 + 3 × 4096 = 22528; × 32 = 720,896.
        assert_eq!(m.svf_params(), 720_896);
    }

    #[test]
    fn unknown_presets_list_the_valid_ones() {
        let e = model("gpt-9").expect_err("unknown").to_string();
        assert!(e.contains("`gpt-9`") && e.contains("`llama-8b`") && e.contains("`llama-70b`"), "{e}");
        let e = gpu("tpu").expect_err("unknown").to_string();
        assert!(e.contains("`tpu`") && e.contains("`h100`") && e.contains("`rtx4090`"), "{e}");
    }
}
