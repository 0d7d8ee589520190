//! `strata eval` from end to end: load the run, measure label agreement, embed and search the
//! questions, rerun selection at the budgets other than the run's, compare with the baselines
//! (and with another run), and write `eval.json`. The CLI resolves the options and hands in the
//! run's embedder; everything measured happens here.

use crate::{EvalError, EvalReport, Questions, RunData, StrataSelection};
use rayon::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use strata_core::manifest::Manifest;
use strata_core::rundir::EVAL;
use strata_core::RunDir;
use strata_select::{Budget, SelectConfig};

/// Hits asked of each search: recall@10 and MRR@10.
pub const TOP_K: usize = 10;

/// What to measure, resolved by the CLI from its flags and the run's recipe.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Fractions of corpus tokens to compare selections at.
    pub budgets: Vec<f64>,
    /// Seeds of the random baseline (mean and spread).
    pub random_seeds: u64,
    /// Questions sampled from the file (seeded).
    pub max_questions: usize,
    pub questions: Option<PathBuf>,
    /// Document metadata fields to measure the taxonomy against; empty: every usable one.
    pub label_fields: Vec<String>,
    /// Another run over the same chunks to compare with.
    pub compare: Option<PathBuf>,
    /// The run's seed and selection and duplicate settings (from its recipe).
    pub seed: u64,
    pub select: SelectConfig,
    pub near_duplicate_threshold: f32,
}

/// Embeds question texts with the run's own embedder, in order.
pub type EmbedTexts<'a> = dyn FnMut(&[&str]) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>> + 'a;

/// Measures the finished run in `run` (whose manifest is `manifest`).
pub fn evaluate(run: &RunDir, manifest: &Manifest, options: &EvalOptions, embed: &mut EmbedTexts) -> Result<EvalReport, EvalError> {
    let data = RunData::load(run)?;
    let fields = if options.label_fields.is_empty() { crate::default_label_fields(&data.documents) } else { options.label_fields.clone() };
    let labels = crate::label_agreement(&data, &fields)?;
    let label_quality = crate::label_quality(run, &data)?;
    let topic_first = crate::topic_first(run, &data)?;
    let mut settings = json!({
        "nmi": "mutual information / arithmetic mean of the two entropies",
        "label_fields": fields,
        "budgets": options.budgets,
        "random_seeds": options.random_seeds,
        "seed": options.seed,
        "min_passage_tokens": options.select.min_passage_tokens,
        "near_duplicate_threshold": (options.near_duplicate_threshold as f64 * 1e6).round() / 1e6,
        "corpus_tokens": data.corpus_tokens,
        "coverage_unit": "passage",
        "search_k": TOP_K,
    });

    let asked = match &options.questions {
        Some(path) => Some(ask(run, &data, path, options, embed, &mut settings)?),
        None => None,
    };
    // Coverage is measured on passages, the units selection chooses among; the questions'
    // similarity to a selection is to its passages' vectors.
    let units = data.passage_view(run)?;
    let eligible = units.eligible(options.select.min_passage_tokens);
    let strata = selections(&units, manifest, &eligible, options);
    let doc_refs: Vec<&str> = asked.as_ref().map(|a| a.doc_ids.iter().map(String::as_str).collect()).unwrap_or_default();
    let questions = asked.as_ref().map(|a| Questions { vectors: &a.vectors, doc_ids: &doc_refs });
    let coverage = crate::compare(
        &units,
        &eligible,
        &strata,
        questions.as_ref(),
        options.near_duplicate_threshold,
        options.random_seeds,
        options.seed,
    );
    let comparison = match &options.compare {
        Some(other) => Some(crate::compare_runs(&data, &RunData::load(&RunDir::new(other))?, &other.display().to_string())?),
        None => None,
    };
    let retrieval = asked.map(|a| a.retrieval).unwrap_or_default();
    Ok(EvalReport { coverage, labels, label_quality, topic_first, retrieval, comparison, settings })
}

/// Writes `eval.json` into the run directory (atomically) and returns its text.
pub fn write_report(run: &RunDir, report: &EvalReport) -> Result<String, EvalError> {
    let path = run.path(EVAL);
    let text = serde_json::to_string_pretty(report).map_err(|e| EvalError::Write { path: path.clone(), source: e.into() })? + "\n";
    strata_core::stage::write_atomically(&path, text.as_bytes()).map_err(|source| EvalError::Write { path, source })?;
    Ok(text)
}

/// The questions asked of the run: their vectors, their documents and the retrieval scores.
struct Asked {
    vectors: Vec<Vec<f32>>,
    doc_ids: Vec<String>,
    retrieval: BTreeMap<String, crate::RetrievalScores>,
}

/// The file's questions about documents of this run (a seeded sample), embedded, and searched
/// by BM25 in the run's index and by exact vector search; `settings` records the sample.
fn ask(
    run: &RunDir,
    data: &RunData,
    path: &std::path::Path,
    options: &EvalOptions,
    embed: &mut EmbedTexts,
    settings: &mut serde_json::Value,
) -> Result<Asked, EvalError> {
    let all = crate::read_questions(path)?;
    let known: HashSet<&str> = data.documents.iter().map(|d| d.doc_id.as_str()).collect();
    let about_run: Vec<_> = all.iter().filter(|q| known.contains(q.doc_id.as_str())).cloned().collect();
    let questions = crate::sample(&about_run, options.max_questions, options.seed);
    settings["questions"] = json!({
        "file": path.display().to_string(),
        "in_file": all.len(),
        "about_other_documents": all.len() - about_run.len(),
        "used": questions.len(),
    });
    let texts: Vec<&str> = questions.iter().map(|q| q.question.as_str()).collect();
    let vectors = embed(&texts).map_err(EvalError::Embed)?;
    let doc_ids: Vec<String> = questions.iter().map(|q| q.doc_id.clone()).collect();
    let expected: Vec<&str> = doc_ids.iter().map(String::as_str).collect();

    let retriever = strata_index::Retriever::open(run.root()).map_err(|e| EvalError::Search(e.into()))?;
    let mut retrieval = BTreeMap::new();
    for mode in strata_index::Mode::ALL {
        retrieval.insert(mode.as_str().to_string(), search_timed(&retriever, mode, &texts, &vectors, &expected)?);
    }
    Ok(Asked { vectors, doc_ids, retrieval })
}

/// Questions timed one after another, on one thread, per mode (the scores use every question,
/// searched in parallel).
pub const LATENCY_QUESTIONS: usize = 1000;

/// Every question searched by `mode`: the scores of the documents of the first `TOP_K` hits,
/// and the latency of one search (the query already embedded) over the first
/// `LATENCY_QUESTIONS`, timed one at a time so searches do not compete for the cores.
fn search_timed(
    retriever: &strata_index::Retriever,
    mode: strata_index::Mode,
    texts: &[&str],
    vectors: &[Vec<f32>],
    expected: &[&str],
) -> Result<crate::RetrievalScores, EvalError> {
    let search = |q: &str, v: &[f32]| -> Result<Vec<String>, EvalError> {
        let hits = retriever.search(q, Some(v), mode, None, TOP_K).map_err(|e| EvalError::Search(e.into()))?;
        Ok(hits.into_iter().map(|h| h.doc_id).collect())
    };
    // The first questions one at a time, timed; the rest in parallel.
    let timed = texts.len().min(LATENCY_QUESTIONS);
    let mut ranked = Vec::with_capacity(texts.len());
    let mut ms = Vec::with_capacity(timed);
    for (q, v) in texts.iter().zip(vectors).take(timed) {
        let started = std::time::Instant::now();
        ranked.push(search(q, v)?);
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let rest: Vec<Vec<String>> = texts[timed..].par_iter().zip(&vectors[timed..]).map(|(q, v)| search(q, v)).collect::<Result<_, _>>()?;
    ranked.extend(rest);
    let round = |x: f64| (x * 1e3).round() / 1e3;
    Ok(crate::RetrievalScores {
        p50_ms: round(crate::quantile(&ms, 0.5)),
        p99_ms: round(crate::quantile(&ms, 0.99)),
        ..crate::score_rankings(expected, &ranked)
    })
}

/// Our selection at each budget: the run's own where the budget is the run's, else selection
/// rerun at that budget with the run's settings.
fn selections(data: &RunData, manifest: &Manifest, eligible: &[bool], options: &EvalOptions) -> Vec<StrataSelection> {
    let run_budget = manifest.stages.select.as_ref().map(|s| s.summary.budget_tokens);
    let candidates = data.candidates(eligible);
    let floor = strata_select::cost_floor(&candidates, options.select.cost_floor);
    options
        .budgets
        .iter()
        .map(|&budget| {
            let config = SelectConfig { budget, budget_tokens: None, ..options.select.clone() };
            let tokens = config.budget_tokens(data.corpus_tokens);
            let from_run = run_budget == Some(tokens);
            let selected = if from_run {
                data.chunks.iter().map(|c| c.selected).collect()
            } else {
                strata_select::select(&candidates, Budget { tokens }, floor, config.max_clients, config.max_similarity, options.seed)
            };
            StrataSelection { budget, budget_tokens: tokens, selected, from_run }
        })
        .collect()
}
