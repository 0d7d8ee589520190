//! `strata cost`: the ledger for a finished run, with assumptions from the run's recipe and
//! the flags; rewrites `cost.json` and redraws the report.

use crate::cli::CostArgs;
use crate::progress::Bars;
use crate::UsageError;
use anyhow::{Context, Result};
use strata_core::manifest::Manifest;
use strata_core::rundir::{COST, MANIFEST, SSFT_QA};
use strata_core::stage::run_stage;
use strata_core::RunDir;
use strata_cost::{CostConfig, CostStage};

pub fn cost(args: &CostArgs, quiet: bool) -> Result<()> {
    let run = RunDir::new(&args.run);
    let manifest_path = run.path(MANIFEST);
    let mut manifest = Manifest::load(&manifest_path)?
        .with_context(|| format!("`{}` is missing: is `{}` a run directory?", manifest_path.display(), run.root().display()))?;
    let mut config: CostConfig = match manifest.config.get("cost") {
        Some(v) => serde_json::from_value(v.clone()).with_context(|| format!("the `cost` settings in `{}`", manifest_path.display()))?,
        None => CostConfig::default(),
    };
    if let Some(m) = &args.model {
        config.model = m.clone();
    }
    if let Some(g) = &args.gpu {
        config.gpu = g.clone();
    }
    config.params = args.params.or(config.params);
    config.mfu = args.mfu.unwrap_or(config.mfu);
    config.price_per_gpu_hour = args.price_per_gpu_hour.unwrap_or(config.price_per_gpu_hour);
    config.epochs = args.epochs.unwrap_or(config.epochs);
    config.top_k = args.top_k.unwrap_or(config.top_k);
    config.queries_per_day = args.queries_per_day.unwrap_or(config.queries_per_day);
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    if let Some(cfg) = manifest.config.as_object_mut() {
        cfg.insert("cost".into(), serde_json::to_value(&config)?);
    }

    let progress = Bars::new(true);
    let llm_model = manifest.config.pointer("/llm/model").and_then(|m| m.as_str()).map(str::to_string);
    let stage = CostStage { config, ssft_qa: run.path(SSFT_QA).exists(), llm_model };
    run_stage(&run, &mut manifest, &stage, &progress, true)?;
    run_stage(&run, &mut manifest, &strata_report::ReportStage, &progress, true)?;
    let ledger: strata_core::ledger::Ledger = serde_json::from_slice(&std::fs::read(run.path(COST))?)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&ledger)?)?;
    } else if !quiet {
        out!("{}", strata_cost::render_table(&ledger))?;
    }
    Ok(())
}
