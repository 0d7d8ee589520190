//! `strata eval` from end to end: load the run, measure label agreement, embed and search the
//! questions, rerun selection at the budgets other than the run's, compare with the baselines
//! (and with another run), and write `eval.json`. The CLI resolves the options and hands in the
//! run's embedder; everything measured happens here.

use crate::{EvalError, EvalReport, Questions, RunData, StrataSelection};
use rayon::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use strata_core::manifest::Manifest;
use strata_core::rundir::EVAL;
use strata_core::RunDir;
use strata_select::{Budget, Candidate, SelectConfig};

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

    let searcher = strata_index::Searcher::open(run.root()).map_err(|e| EvalError::Search(e.into()))?;
    let retrieval = search_every_way(&searcher, data, &texts, &vectors)?
        .into_iter()
        .map(|(method, ranked)| (method.to_string(), crate::score_rankings(&expected, &ranked)))
        .collect();
    Ok(Asked { vectors, doc_ids, retrieval })
}

/// Per question, the documents of the hits, best first.
type Ranked<'d> = Vec<Vec<&'d str>>;

/// Chunks each ranking contributes to the fusion.
const FUSION_DEPTH: usize = 50;

/// Each question searched once by BM25 and once by exact vector search, to `FUSION_DEPTH`
/// chunks: `bm25` and `vector` are the documents of each one's first `TOP_K` chunks, `hybrid`
/// those of the first `TOP_K` of the two fused by reciprocal rank (k = 60).
fn search_every_way<'d>(
    searcher: &strata_index::Searcher,
    data: &'d RunData,
    texts: &[&str],
    vectors: &[Vec<f32>],
) -> Result<[(&'static str, Ranked<'d>); 3], EvalError> {
    let row_of: HashMap<&str, usize> = data.chunks.iter().enumerate().map(|(i, c)| (c.chunk_id.as_str(), i)).collect();
    let lexical: Vec<Vec<usize>> = texts
        .par_iter()
        .map(|q| {
            searcher
                .search(q, None, FUSION_DEPTH)
                .map(|hits| hits.iter().filter_map(|h| row_of.get(h.chunk_id.as_str()).copied()).collect())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| EvalError::Search(e.into()))?;
    let dense = crate::vector_search(data, vectors, FUSION_DEPTH);
    let chunk = |i: usize| data.chunks[i].chunk_id.as_str();
    let docs = |rows: &mut dyn Iterator<Item = usize>| rows.take(TOP_K).map(|i| data.chunks[i].doc_id.as_str()).collect::<Vec<_>>();
    let hybrid = lexical
        .iter()
        .zip(&dense)
        .map(|(l, d)| {
            let fused = strata_index::reciprocal_rank_fusion(
                &[l.iter().map(|&i| chunk(i)).collect(), d.iter().map(|&i| chunk(i)).collect()],
                strata_index::RRF_K,
            );
            docs(&mut fused.into_iter().map(|c| row_of[c]))
        })
        .collect();
    Ok([
        ("bm25", lexical.iter().map(|l| docs(&mut l.iter().copied())).collect()),
        ("vector", dense.iter().map(|d| docs(&mut d.iter().copied())).collect()),
        ("hybrid", hybrid),
    ])
}

/// Our selection at each budget: the run's own where the budget is the run's, else selection
/// rerun at that budget with the run's settings.
fn selections(data: &RunData, manifest: &Manifest, eligible: &[bool], options: &EvalOptions) -> Vec<StrataSelection> {
    let run_budget = manifest.stages.select.as_ref().map(|s| s.summary.budget_tokens);
    let candidates: Vec<Candidate> = data
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| Candidate { leaf: c.node_id, n_tokens: c.n_tokens, eligible: eligible[i], vector: data.vector(i) })
        .collect();
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
