//! The static fast path (`model = "static"`): the table distilled by
//! tools/model/distill_static.py gives unit vectors of the table's width, semantically sane
//! and deterministic. Needs the prepared model (`make model`), as every run does.

mod common;

use common::files;
use strata_core::vectors::dot as cosine;
use strata_core::NoProgress;
use strata_embed::{Embedder, ModelVariant};

fn table_dims() -> usize {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(files().static_info()).expect("static.json: run `make model`")).expect("json");
    info["dims"].as_u64().expect("dims") as usize
}

const TEXTS: [&str; 6] = [
    "A heart attack occurs when blood flow to the heart is blocked.",
    "Myocardial infarction results from coronary artery occlusion.",
    "The stock market fell sharply today.",
    "heart attack",
    "myocardial infarction",
    "stock market",
];

#[test]
fn static_vectors_are_unit_norm_and_as_wide_as_the_table() {
    let mut embedder = Embedder::load(&files(), ModelVariant::Static, 0).expect("static table loads");
    assert_eq!(embedder.dim(), table_dims());
    // Empty text and characters outside the vocabulary ([UNK], a zero row) still get a unit vector.
    let mut texts = TEXTS.to_vec();
    texts.extend(["", "☃☃☃", "the the the", "Ünïcode & symbols: <$100> — café!"]);
    for (t, v) in texts.iter().zip(embedder.embed(&texts, 8).expect("embeds")) {
        assert_eq!(v.len(), table_dims());
        assert!(v.iter().all(|x| x.is_finite()), "{t:?}");
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-5, "{t:?}: norm² {}", cosine(&v, &v));
    }
}

#[test]
fn static_vectors_are_semantic() {
    let mut embedder = Embedder::load(&files(), ModelVariant::Static, 0).expect("static table loads");
    let v = embedder.embed(&TEXTS, 8).expect("embeds");
    // No word in common between the first two: only the distilled meanings bring them close.
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.1, "{} vs {}", cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
    assert!(cosine(&v[3], &v[4]) > cosine(&v[3], &v[5]), "{} vs {}", cosine(&v[3], &v[4]), cosine(&v[3], &v[5]));
}

#[test]
fn static_vectors_are_deterministic_and_independent_of_batching() {
    let mut a = Embedder::load(&files(), ModelVariant::Static, 0).expect("static table loads");
    let mut b = Embedder::load(&files(), ModelVariant::Static, 0).expect("static table loads again");
    let together = a.embed(&TEXTS, 8).expect("embeds");
    let (by_length, stats) =
        b.embed_by_length(&TEXTS, strata_embed::Batching { max_texts: 2, max_tokens: 64 }, &NoProgress).expect("embeds");
    assert_eq!(together, by_length, "bit-identical across loads and batchings");
    for (t, v) in TEXTS.iter().zip(&together) {
        assert_eq!(&a.embed(&[t], 1).expect("embeds")[0], v, "{t:?} alone");
    }
    // No padding: every token computed is a real one.
    assert!(stats.real_tokens > 0);
    assert_eq!(stats.padded_tokens, stats.real_tokens);
}

#[test]
fn static_and_neural_agree_on_which_text_is_nearest() {
    let mut s = Embedder::load(&files(), ModelVariant::Static, 0).expect("static table loads");
    let mut n = Embedder::load(&files(), ModelVariant::Minilm, 2).expect("model loads");
    let queries = ["What are the symptoms of asthma?", "How is type 2 diabetes treated?", "What causes kidney stones?"];
    let passages = [
        "Asthma causes wheezing, shortness of breath, chest tightness and coughing.",
        "Treatment of type 2 diabetes includes metformin, diet, exercise and sometimes insulin.",
        "Kidney stones form when urine holds more calcium, oxalate or uric acid than it can dissolve.",
    ];
    for e in [&mut s, &mut n] {
        let q = e.embed(&queries, 8).expect("embeds");
        let p = e.embed(&passages, 8).expect("embeds");
        for (i, qv) in q.iter().enumerate() {
            let best = (0..p.len()).max_by(|&a, &b| cosine(qv, &p[a]).total_cmp(&cosine(qv, &p[b]))).expect("passages");
            assert_eq!(best, i, "{:?}", queries[i]);
        }
    }
}
