//! `strata eval`: measures a finished run (strata-eval), writes `eval.json` and redraws the
//! report. Here: the flags and the run's recipe resolved into options, the run's embedder
//! loaded for the questions, and the table printed.

use crate::cli::EvalArgs;
use crate::progress::Bars;
use crate::recipe::Recipe;
use crate::UsageError;
use anyhow::{Context, Result};
use strata_core::manifest::Manifest;
use strata_core::rundir::MANIFEST;
use strata_core::stage::run_stage;
use strata_core::RunDir;
use strata_eval::{EvalError, EvalOptions};

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
    let options = EvalOptions {
        budgets: args.budgets.clone(),
        random_seeds: args.random_seeds,
        max_questions: args.max_questions,
        questions: args.questions.clone(),
        label_fields: args.labels.clone(),
        compare: args.compare.clone(),
        seed: recipe.seed,
        select: recipe.select.clone(),
        near_duplicate_threshold: recipe.taxonomy.near_duplicate_threshold,
    };
    let progress = Bars::new(quiet);
    // The run's own embedder: its files are looked for only when there are questions, and the
    // model is loaded on the first call.
    let embedder = match &options.questions {
        Some(_) => Some(strata_embed::LazyEmbedder::new(crate::model::model_files()?, recipe.embed.model, &recipe.embed, 0)),
        None => None,
    };
    let mut embed = |texts: &[&str]| match &embedder {
        Some(e) => e.embed_with_progress(texts, &progress),
        None => Err("no questions file, so no embedder".into()),
    };
    let report = strata_eval::evaluate(&run, &manifest, &options, &mut embed).map_err(|e| match e {
        EvalError::NoSuchLabel { .. } => anyhow::Error::new(UsageError(format!("--labels: {e}"))),
        e => anyhow::Error::new(e).context(format!("run directory `{}`", run.root().display())),
    })?;
    let text = strata_eval::write_report(&run, &report)?;
    run_stage(&run, &mut manifest, &strata_report::ReportStage, &progress, true)?;
    if args.json {
        out!("{text}")?;
    } else if !quiet {
        out!("{}", strata_eval::render_table(&report))?;
        outln!("wrote {}", run.path(strata_core::rundir::EVAL).display())?;
    }
    Ok(())
}
