//! `strata eval`: measures a finished run (taxonomy against labels, retrieval, the subset
//! against baselines), writes `eval.json` and redraws the report. The glue: questions are
//! embedded here, BM25 runs here, and selection is rerun here at budgets other than the
//! run's; strata-eval computes the figures from what this passes in.

use crate::cli::EvalArgs;
use crate::progress::Bars;
use crate::recipe::Recipe;
use crate::UsageError;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use strata_core::manifest::Manifest;
use strata_core::rundir::{EVAL, MANIFEST};
use strata_core::stage::{run_stage, write_atomically};
use strata_core::RunDir;
use strata_eval::{EvalError, EvalReport, Questions, RunData, StrataSelection};

/// Hits asked of each search: recall@10 and MRR@10.
const TOP_K: usize = 10;

pub fn eval(args: &EvalArgs, quiet: bool) -> Result<()> {
    if let Some(b) = args.budgets.iter().find(|b| !(**b > 0.0 && **b <= 1.0)) {
        return Err(UsageError(format!("--budgets: {b} is not a fraction in (0, 1]")).into());
    }
    let run = RunDir::new(&args.run);
    let manifest_path = run.path(MANIFEST);
    let mut manifest = Manifest::load(&manifest_path)?
        .with_context(|| format!("`{}` is missing: is `{}` a run directory?", manifest_path.display(), run.root().display()))?;
    let recipe: Recipe = serde_json::from_value(manifest.config.clone())
        .with_context(|| format!("the configuration recorded in `{}`", manifest_path.display()))?;
    let data = RunData::load(&run).with_context(|| format!("run directory `{}`", run.root().display()))?;
    let progress = Bars::new(quiet);

    let fields = if args.labels.is_empty() { strata_eval::default_label_fields(&data.documents) } else { args.labels.clone() };
    let labels = strata_eval::label_agreement(&data, &fields).map_err(|e| match e {
        EvalError::NoSuchLabel { .. } => anyhow::Error::new(UsageError(format!("--labels: {e}"))),
        e => anyhow::Error::new(e).context(format!("run directory `{}`", run.root().display())),
    })?;

    // Questions: the file's questions about documents of this run, a seeded sample of them.
    let mut settings = json!({
        "nmi": "mutual information / arithmetic mean of the two entropies",
        "label_fields": fields,
        "budgets": args.budgets,
        "random_seeds": args.random_seeds,
        "seed": recipe.seed,
        "min_chunk_tokens": recipe.select.min_chunk_tokens,
        "near_duplicate_threshold": (recipe.taxonomy.near_duplicate_threshold as f64 * 1e6).round() / 1e6,
        "corpus_tokens": data.corpus_tokens(),
        "search_k": TOP_K,
    });
    let mut retrieval = BTreeMap::new();
    let mut question_vectors = Vec::new();
    let mut question_docs = Vec::new();
    if let Some(path) = &args.questions {
        let all = strata_eval::read_questions(path)?;
        let known: HashSet<&str> = data.documents.iter().map(|d| d.doc_id.as_str()).collect();
        let about_run: Vec<_> = all.iter().filter(|q| known.contains(q.doc_id.as_str())).cloned().collect();
        let questions = strata_eval::sample(&about_run, args.max_questions, recipe.seed);
        settings["questions"] = json!({
            "file": path.display().to_string(),
            "in_file": all.len(),
            "about_other_documents": all.len() - about_run.len(),
            "used": questions.len(),
        });

        let files = crate::model::model_files()?;
        let mut embedder = strata_embed::Embedder::load(&files, recipe.embed.model, 0)?;
        let texts: Vec<&str> = questions.iter().map(|q| q.question.as_str()).collect();
        question_vectors = embedder.embed_by_length(&texts, recipe.embed.batch_size, &progress)?.0;
        question_docs = questions.iter().map(|q| q.doc_id.clone()).collect();
        let expected: Vec<&str> = question_docs.iter().map(String::as_str).collect();

        let searcher = strata_index::Searcher::open(run.root())?;
        let bm25: Vec<Vec<String>> = texts
            .par_iter()
            .map(|q| searcher.search(q, None, TOP_K).map(|hits| hits.into_iter().map(|h| h.doc_id).collect()))
            .collect::<Result<_, _>>()?;
        retrieval.insert("bm25".to_string(), strata_eval::score_rankings(&expected, &bm25));
        let vector: Vec<Vec<&str>> = strata_eval::vector_search(&data, &question_vectors, TOP_K)
            .into_iter()
            .map(|hits| hits.into_iter().map(|i| data.chunks[i].doc_id.as_str()).collect())
            .collect();
        retrieval.insert("vector".to_string(), strata_eval::score_rankings(&expected, &vector));
    }

    // Our selection at each budget: the run's own where the budget is the run's, else rerun.
    let corpus_tokens = data.corpus_tokens();
    let run_budget = manifest.stages.get("select").and_then(|s| s.extra.get("budget_tokens")).and_then(|v| v.as_u64());
    let eligible = data.eligible(recipe.select.min_chunk_tokens);
    let candidates: Vec<strata_select::Candidate> = data
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| strata_select::Candidate { leaf: c.node_id, n_tokens: c.n_tokens, eligible: eligible[i], vector: data.vector(i) })
        .collect();
    let floor = strata_select::cost_floor(&candidates, recipe.select.cost_floor);
    let strata: Vec<StrataSelection> = args
        .budgets
        .iter()
        .map(|&budget| {
            let config = strata_select::SelectConfig { budget, budget_tokens: None, ..recipe.select.clone() };
            let tokens = config.budget_tokens(corpus_tokens);
            let from_run = run_budget == Some(tokens);
            let selected = if from_run {
                data.chunks.iter().map(|c| c.selected).collect()
            } else {
                strata_select::select(
                    &candidates,
                    strata_select::Budget { tokens },
                    floor,
                    config.max_clients,
                    config.max_similarity,
                    recipe.seed,
                )
            };
            StrataSelection { budget, budget_tokens: tokens, selected, from_run }
        })
        .collect();
    let doc_refs: Vec<&str> = question_docs.iter().map(String::as_str).collect();
    let questions = (!question_vectors.is_empty()).then_some(Questions { vectors: &question_vectors, doc_ids: &doc_refs });
    let coverage = strata_eval::compare(
        &data,
        &eligible,
        &strata,
        questions.as_ref(),
        recipe.taxonomy.near_duplicate_threshold,
        args.random_seeds,
        recipe.seed,
    );

    let comparison = match &args.compare {
        Some(other) => {
            let there = RunData::load(&RunDir::new(other)).with_context(|| format!("run directory `{}` (--compare)", other.display()))?;
            Some(strata_eval::compare_runs(&data, &there, &other.display().to_string())?)
        }
        None => None,
    };
    let report = EvalReport { coverage, labels, retrieval, comparison, settings };
    let text = serde_json::to_string_pretty(&report)? + "\n";
    write_atomically(&run.path(EVAL), text.as_bytes()).with_context(|| format!("failed to write `{}`", run.path(EVAL).display()))?;
    run_stage(&run, &mut manifest, &strata_report::ReportStage, &progress, true)?;
    if args.json {
        out!("{text}")?;
    } else if !quiet {
        out!("{}", strata_eval::render_table(&report))?;
        outln!("wrote {}", run.path(EVAL).display())?;
    }
    Ok(())
}
