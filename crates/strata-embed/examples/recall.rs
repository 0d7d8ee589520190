//! Recall@10 of vector search over a run's chunk embeddings, for `make bench`:
//!
//!     cargo run --release -p strata-embed --example recall -- RUN_DIR QUESTIONS.jsonl VARIANT [N]
//!
//! QUESTIONS.jsonl rows hold `question` and `doc_id` (MedQuAD's questions.jsonl). Questions
//! whose document is in the run are sampled (N, default 1000, by the hash of the question,
//! so the same sample for every run of the same corpus), embedded with VARIANT (`static`,
//! `minilm`, `minilm-int8`: the variant that made the run's embeddings), and a question is
//! answered when one of its 10 nearest chunks (cosine, exhaustive) belongs to its document.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;
use strata_core::parquet_io::read_rows;
use strata_core::records::{ChunkRecord, EmbeddingRecord};
use strata_core::rundir::{EMBEDDINGS, WORK_CHUNKS};
use strata_embed::{Embedder, ModelFiles, ModelVariant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: recall RUN_DIR QUESTIONS.jsonl VARIANT [N]".into());
    }
    let run = PathBuf::from(&args[0]);
    let variant: ModelVariant = serde_json::from_value(serde_json::Value::String(args[2].clone()))?;
    let n: usize = args.get(3).map_or(Ok(1000), |s| s.parse())?;

    let chunks: Vec<ChunkRecord> = read_rows(&run.join(WORK_CHUNKS))?;
    let embeddings: Vec<EmbeddingRecord> = read_rows(&run.join(EMBEDDINGS))?;
    let doc_of: std::collections::HashMap<&str, &str> = chunks.iter().map(|c| (c.chunk_id.as_str(), c.doc_id.as_str())).collect();
    let docs: HashSet<&str> = chunks.iter().map(|c| c.doc_id.as_str()).collect();

    let mut questions: Vec<(String, String, String)> = Vec::new();
    for line in std::fs::read_to_string(&args[1])?.lines().filter(|l| !l.trim().is_empty()) {
        let q: serde_json::Value = serde_json::from_str(line)?;
        let (Some(text), Some(doc)) = (q["question"].as_str(), q["doc_id"].as_str()) else { continue };
        if docs.contains(doc) {
            questions.push((strata_core::hash::sha256_hex(text.as_bytes()), text.to_string(), doc.to_string()));
        }
    }
    questions.sort();
    questions.truncate(n);

    let cache = std::env::var_os("STRATA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/strata"));
    let dylib = std::fs::read_to_string(cache.join("onnxruntime/DYLIB_PATH"))?;
    let files = ModelFiles { dir: cache.join("models/all-minilm-l6-v2"), onnxruntime: PathBuf::from(dylib.trim()) };
    let mut embedder = Embedder::load(&files, variant, 0)?;
    let texts: Vec<&str> = questions.iter().map(|(_, t, _)| t.as_str()).collect();
    let t = Instant::now();
    let qv = embedder.embed(&texts, 32)?;
    let embed_s = t.elapsed().as_secs_f64();
    if qv.first().map(Vec::len) != embeddings.first().map(|e| e.embedding.len()) {
        return Err(format!("{} gives {}-dim vectors but the run's are {}-dim: pass the run's variant", args[2], embedder.dim(), embeddings.first().map_or(0, |e| e.embedding.len())).into());
    }

    use rayon::prelude::*;
    let hits: usize = qv
        .par_iter()
        .zip(&questions)
        .filter(|(q, (_, _, doc))| {
            let mut scored: Vec<(f32, &str)> =
                embeddings.iter().map(|e| (e.embedding.iter().zip(q.iter()).map(|(a, b)| a * b).sum::<f32>(), e.chunk_id.as_str())).collect();
            let k = 10.min(scored.len());
            if k == 0 {
                return false;
            }
            scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            scored[..k].iter().any(|(_, id)| doc_of.get(id) == Some(&doc.as_str()))
        })
        .count();
    println!(
        "recall@10 {:<12} {:.3}  ({} questions, {} chunks of {} documents, dim {}, questions embedded in {:.2}s)",
        args[2],
        hits as f64 / questions.len().max(1) as f64,
        questions.len(),
        embeddings.len(),
        docs.len(),
        embedder.dim(),
        embed_s
    );
    Ok(())
}
