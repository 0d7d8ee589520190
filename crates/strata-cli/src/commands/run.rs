//! `strata run` and the single-stage subcommands.

use crate::cli::RunArgs;
use crate::progress::Bars;
use crate::recipe::Recipe;
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_chunk::CorpusScan;
use strata_core::manifest::{InputFile, Manifest, ManifestError};
use strata_core::rundir::MANIFEST;
use strata_core::stage::{run_stage, Outcome};
use strata_core::summary::TargetTokenizer;
use strata_core::{RunDir, Stage, StageName};

/// Runs every stage of the recipe, or only `only`. A bad recipe or corpus fails before the run
/// directory is touched; a failed stage leaves only the complete outputs of earlier stages.
pub fn run(args: &RunArgs, only: Option<StageName>, quiet: bool) -> Result<()> {
    let recipe = Recipe::load(args)?;
    if args.threads > 0 {
        // Fails only if a pool exists already, which is then used as it is.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global();
    }
    let scan = strata_chunk::scan_corpus(&recipe.corpus, recipe.strict)?;
    for (path, reason) in &scan.skipped {
        tracing::warn!("skipped `{}`: {}", scan.root.join(path).display(), reason);
    }
    let run = RunDir::new(recipe.out_dir());
    let created: Vec<PathBuf> =
        run.root().ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).map(Path::to_path_buf).collect();
    std::fs::create_dir_all(run.root()).with_context(|| format!("failed to create the run directory `{}`", run.root().display()))?;
    let _lock = lock(run.root())?;
    let result = run_stages(&run, &recipe, scan, args, only, quiet);
    if result.is_err() {
        // The folders this run created go again, as long as the failed run left them empty.
        created.iter().try_for_each(std::fs::remove_dir).ok();
    }
    result
}

/// One process per run directory (a second would share its temporary folders): an exclusive
/// lock on the folder, which the system releases when the process ends, however it ends.
fn lock(dir: &Path) -> Result<std::fs::File> {
    let folder = std::fs::File::open(dir).with_context(|| format!("failed to open the run directory `{}`", dir.display()))?;
    match folder.try_lock() {
        Ok(()) => Ok(folder),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!(
                "another strata process is writing the run directory `{}`; wait for it to finish or pass another --out",
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("failed to lock the run directory `{}`", dir.display())),
    }
}

fn run_stages(run: &RunDir, recipe: &Recipe, scan: CorpusScan, args: &RunArgs, only: Option<StageName>, quiet: bool) -> Result<()> {
    let mut manifest = match Manifest::load(&run.path(MANIFEST)) {
        // A run of an older contract is redone from the start, every stage.
        Err(e @ ManifestError::Version { .. }) => {
            tracing::warn!("{e}; every stage reruns");
            None
        }
        other => other?,
    }
    .unwrap_or_else(|| Manifest::new(json!(null)));
    manifest.schema_version = strata_core::SCHEMA_VERSION;
    manifest.tool_version = strata_core::TOOL_VERSION.to_string();
    manifest.config = serde_json::to_value(recipe)?;
    manifest.inputs = scan.files.iter().map(|f| InputFile { path: f.rel.clone(), bytes: f.bytes, sha256: f.sha256.clone() }).collect();
    manifest.skipped = scan.skipped.iter().map(|(p, r)| json!({"path": p, "reason": r})).collect();

    let stages = pipeline(recipe, scan, args)?;
    let progress = Bars::new(quiet);
    let mut summary = Vec::new();
    for stage in stages.iter().filter(|s| only.is_none_or(|o| o == s.name())) {
        let force = args.force || only.is_some();
        let outcome = run_stage(run, &mut manifest, stage.as_ref(), &progress, force)
            .with_context(|| format!("run directory `{}`", run.root().display()))?;
        summary.push((stage.name(), outcome));
    }
    if !quiet {
        print_summary(run, &manifest, &summary)?;
    }
    Ok(())
}

/// Every stage in order, configured from the recipe.
fn pipeline(recipe: &Recipe, scan: CorpusScan, args: &RunArgs) -> Result<Vec<Box<dyn Stage>>> {
    let files = crate::model::model_files()?;
    let tokenizer_path = files.tokenizer();
    let tokenizer_sha256 = strata_core::hash::file_sha256(&tokenizer_path)
        .with_context(|| format!("the model is not prepared (no `{}`); run `make model`", tokenizer_path.display()))?;
    let embedder = Arc::new(strata_embed::LazyEmbedder::new(files.clone(), recipe.embed.model, &recipe.embed, args.threads));
    let (target_path, target) = target_tokenizer(recipe, &tokenizer_path, &tokenizer_sha256)?;
    Ok(vec![
        Box::new(strata_chunk::ChunkStage {
            scan,
            tokenizer_path: tokenizer_path.clone(),
            tokenizer_sha256,
            config: recipe.chunk.clone(),
            target_path: target_path.clone(),
            target,
            passage_tokens: recipe.target.passage_tokens,
        }),
        Box::new(strata_embed::EmbedStage {
            config: recipe.embed.clone(),
            files,
            threads: args.threads,
            cache_dir: (!args.no_vector_cache).then(|| crate::model::cache_dir().join("vectors")),
            window_chunks: strata_embed::WINDOW_CHUNKS,
        }),
        Box::new(strata_taxonomy::TaxonomyStage {
            config: recipe.taxonomy.clone(),
            domain: recipe.domain.clone(),
            seed: recipe.seed,
            embedder,
        }),
        Box::new(strata_select::SelectStage { config: recipe.select.clone(), seed: recipe.seed }),
        Box::new(strata_emit::EmitStage {
            config: recipe.emit.clone(),
            domain: recipe.domain.clone(),
            seed: recipe.seed,
            tokenizer_path: target_path,
        }),
        Box::new(strata_index::IndexStage),
        Box::new(strata_cost::CostStage { config: recipe.cost.clone() }),
        Box::new(strata_report::ReportStage),
    ])
}

/// The tokenizer that counts training tokens: the recipe's target tokenizer, else the
/// embedding model's (and the manifest says which).
fn target_tokenizer(recipe: &Recipe, embedding: &Path, embedding_sha256: &str) -> Result<(PathBuf, TargetTokenizer)> {
    let file_name = |p: &Path| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
    let Some(path) = &recipe.target.tokenizer else {
        let id = TargetTokenizer { file: file_name(embedding), sha256: embedding_sha256.to_string(), is_target: false };
        return Ok((embedding.to_path_buf(), id));
    };
    let sha256 =
        strata_core::hash::file_sha256(path).with_context(|| format!("failed to read the target tokenizer `{}`", path.display()))?;
    strata_core::tokens::TokenCounter::from_file(path)?;
    Ok((path.clone(), TargetTokenizer { file: file_name(path), sha256, is_target: true }))
}

fn print_summary(run: &RunDir, manifest: &Manifest, summary: &[(StageName, Outcome)]) -> std::io::Result<()> {
    outln!("{:<10} {:<8} {:>9} {:>9} {:>9}", "stage", "status", "seconds", "rows in", "rows out")?;
    for (name, outcome) in summary {
        let rec = manifest.stages.run(*name).cloned().unwrap_or_default();
        let status = if *outcome == Outcome::Ran { "ran" } else { "skipped" };
        outln!("{:<10} {:<8} {:>9.2} {:>9} {:>9}", name.as_str(), status, rec.seconds, rec.rows_in, rec.rows_out)?;
    }
    if let Some(sel) = &manifest.stages.select {
        let s = &sel.summary;
        outln!(
            "{}: {} passages; selected {} passages, {} of {} budget tokens ({} of {} corpus tokens); {} of {} leaves covered",
            run.root().display(),
            sel.run.rows_in,
            s.selected_passages,
            s.selected_tokens,
            s.budget_tokens,
            s.selected_tokens,
            s.corpus_tokens,
            s.leaves_covered,
            s.leaves,
        )?;
    }
    if !manifest.skipped.is_empty() {
        outln!(
            "{} corpus files skipped (not documents); each is listed with the reason in manifest.json `skipped`",
            manifest.skipped.len()
        )?;
    }
    Ok(())
}
