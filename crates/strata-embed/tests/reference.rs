//! The vectors are the model's: equal to a numpy reference forward pass
//! (fixtures/embeddings/reference.json, made by tools/model/reference.py) and semantically sane.
//! Needs the prepared model (`make model`), as every run does.

mod common;

use common::files;
use strata_core::vectors::dot as cosine;
use strata_embed::{Embedder, ModelVariant};

fn reference() -> Vec<(String, Vec<f32>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/embeddings/reference.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("reference.json")).expect("json");
    json["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| {
            let v = s["embedding"].as_array().expect("embedding").iter().map(|x| x.as_f64().expect("float") as f32).collect();
            (s["text"].as_str().expect("text").to_string(), v)
        })
        .collect()
}

#[test]
fn fp32_vectors_match_the_reference_forward_pass() {
    let reference = reference();
    let mut embedder = Embedder::load(&files(), ModelVariant::Minilm, 2).expect("model loads");
    let texts: Vec<&str> = reference.iter().map(|(t, _)| t.as_str()).collect();
    // One padded batch: padding must not change any vector.
    let got = embedder.embed(&texts, texts.len()).expect("embeds");
    for ((text, want), got) in reference.iter().zip(&got) {
        assert_eq!(got.len(), 384);
        let max_diff = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_diff < 1e-4, "{text}: max abs difference {max_diff}");
    }
}

#[test]
fn vectors_are_normalised_and_semantic() {
    let mut embedder = Embedder::load(&files(), ModelVariant::Minilm, 2).expect("model loads");
    let v = embedder
        .embed(
            &[
                "A heart attack occurs when blood flow to the heart is blocked.",
                "Myocardial infarction results from coronary artery occlusion.",
                "The stock market fell sharply today.",
            ],
            8,
        )
        .expect("embeds");
    for x in &v {
        assert!((cosine(x, x) - 1.0).abs() < 1e-5);
    }
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2, "{} vs {}", cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
}

#[test]
fn int8_vectors_stay_close_to_fp32() {
    let reference = reference();
    let mut embedder = Embedder::load(&files(), ModelVariant::MinilmInt8, 2).expect("int8 model loads");
    let texts: Vec<&str> = reference.iter().map(|(t, _)| t.as_str()).collect();
    let got = embedder.embed(&texts, 1).expect("embeds");
    let mean: f32 = reference.iter().zip(&got).map(|((_, w), g)| cosine(w, g)).sum::<f32>() / got.len() as f32;
    assert!(mean > 0.98, "mean cosine int8 vs fp32 reference: {mean}");
}
