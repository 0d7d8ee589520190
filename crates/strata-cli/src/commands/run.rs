//! `strata run` and the single-stage subcommands.

use crate::cli::RunArgs;
use crate::progress::Bars;
use crate::recipe::Recipe;
use crate::UsageError;
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_chunk::{CorpusScan, ShardPlan};
use strata_core::llm::JsonModel;
use strata_core::manifest::{InputFile, Manifest, ManifestError};
use strata_core::rundir::{MANIFEST, SSFT_QA};
use strata_core::shard::Parts;
use strata_core::stage::{is_recorded, run_stage, FingerprintedOnce, Outcome};
use strata_core::summary::TargetTokenizer;
use strata_core::{Progress, RunDir, Shard, Stage, StageName};

/// Runs every stage of the recipe, or only `only`. A bad recipe or corpus fails before the run
/// directory is touched; a failed stage leaves only the complete outputs of earlier stages.
pub fn run(args: &RunArgs, only: Option<StageName>, quiet: bool) -> Result<()> {
    if args.shard.is_some() && only.is_some_and(|o| !MAP_STAGES.contains(&o) && !ROUND_STAGES.contains(&o)) {
        return Err(UsageError(
            "--shard splits the map stages (chunk, embed), the taxonomy's placement once the reduce has fitted the tree, the count of the label phrases once it has found the keywords, the selection once it has grouped the passages by subtree, and the index once it has published the chunks; the other stages run once, with --shards N"
                .into(),
        )
        .into());
    }
    if only == Some(StageName::Keywords) && args.shard.is_none() && args.shards.is_none() {
        return Err(UsageError(
            "the keywords stage is a sharded run's (`strata keywords --shards N`, or --shard I/N for a shard's count of the label phrases); a single-node run's taxonomy stage finds the keywords itself".into(),
        )
        .into());
    }
    let recipe = Recipe::load(args)?;
    if args.threads > 0 {
        // Fails only if a pool exists already, which is then used as it is.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global();
    }
    let run = match args.shard {
        Some(shard) => RunDir::new(recipe.out_dir()).part(shard),
        None => RunDir::new(recipe.out_dir()),
    };
    let created: Vec<PathBuf> =
        run.root().ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).map(Path::to_path_buf).collect();
    let result = scan(&recipe, args).and_then(|corpus| {
        for (path, reason) in &corpus.0.skipped {
            tracing::warn!("skipped `{}`: {}", corpus.0.root.join(path).display(), reason);
        }
        std::fs::create_dir_all(run.root()).with_context(|| format!("failed to create the run directory `{}`", run.root().display()))?;
        let _lock = lock(run.root())?;
        run_stages(&run, &recipe, corpus, args, only, quiet)
    });
    if result.is_err() {
        // The folders this run created go again, as long as the failed run left them empty.
        created.iter().try_for_each(std::fs::remove_dir).ok();
    }
    result
}

/// `strata recipe`: the resolved recipe, as a run records it in its manifest.
pub fn print_recipe(args: &RunArgs) -> Result<()> {
    let recipe = Recipe::load(args)?;
    outln!("{}", serde_json::to_string_pretty(&recipe)?)?;
    Ok(())
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

/// The corpus's files and, for a shard or the merge of shards, the plan of their count. A
/// shard lists the files and takes their hashes from the plan (made by the first shard to
/// need it, in the run directory: one pass over the corpus for all shards); a whole run or a
/// merge hashes them (the merge's own hashes decide whether the parts are of this corpus).
fn scan(recipe: &Recipe, args: &RunArgs) -> Result<Corpus> {
    let out = RunDir::new(recipe.out_dir());
    Ok(match (args.shard, args.shards) {
        (Some(shard), _) => {
            let mut scan = strata_chunk::list_corpus(&recipe.corpus, recipe.strict)?;
            let plan = ShardPlan::for_scan(&mut scan, &out, shard.count)?;
            (scan, Some(plan))
        }
        (None, Some(count)) => {
            let plan = ShardPlan::saved(&out, count).ok_or_else(|| {
                let plan = out.shard_plan(count);
                anyhow::anyhow!("no shard has run: `{}` is missing; run the {count} shards first (--shard I/{count})", plan.display())
            })?;
            (strata_chunk::scan_corpus(&recipe.corpus, recipe.strict)?, Some(plan))
        }
        (None, None) => (strata_chunk::scan_corpus(&recipe.corpus, recipe.strict)?, None),
    })
}

type Corpus = (CorpusScan, Option<ShardPlan>);

fn run_stages(run: &RunDir, recipe: &Recipe, corpus: Corpus, args: &RunArgs, only: Option<StageName>, quiet: bool) -> Result<()> {
    let scan = &corpus.0;
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

    let stages = pipeline(recipe, corpus, args, only)?;
    let mut stages: Vec<_> = stages.into_iter().filter(|s| only.is_none_or(|o| o == s.name())).collect();
    if let Some(until) = args.until {
        let last = stages.iter().position(|s| s.name() == until);
        let last = last.ok_or_else(|| UsageError(format!("--until {until}: no such stage runs here")))?;
        stages.truncate(last + 1);
    }
    let bars = Bars::new(quiet);
    let fault = fault(args)?;
    let mut summary = Vec::new();
    for stage in &stages {
        // A single-stage command reruns its stage, except on a shard: there a done part is kept.
        let force = args.force || (only.is_some() && args.shard.is_none());
        let crash = CrashAtFirstStep(&bars);
        let progress: &dyn Progress = if fault == Some(stage.name()) { &crash } else { &bars };
        let outcome = run_stage(run, &mut manifest, stage.as_ref(), progress, force)
            .with_context(|| format!("run directory `{}`", run.root().display()))?;
        summary.push((stage.name(), outcome));
    }
    if !quiet {
        print_summary(run, &manifest, &summary)?;
    }
    Ok(())
}

/// The stages that run per shard; the rest run once, on the merged parts.
const MAP_STAGES: [StageName; 2] = [StageName::Chunk, StageName::Embed];
/// The stages a shard runs a part of between steps of the reduce: the taxonomy's placement,
/// once the tree is fitted (`--until fit`), the label phrases' count, once the keywords are
/// found (`--until keywords`), the selection, once the passages are grouped by subtree
/// (`--until subtrees`), and the index, once the chunks are published (`--until emit`).
const ROUND_STAGES: [StageName; 4] = [StageName::Taxonomy, StageName::Keywords, StageName::Select, StageName::Index];

/// Every stage in order, configured from the recipe: on a shard (`--shard`) its map stages, or
/// its part of a round stage (`strata taxonomy|keywords|select|index --shard`); after shards
/// (`--shards N`) merges of their parts in place of the map stages, then the rest (with the
/// keywords stage, which only a sharded run has).
fn pipeline(recipe: &Recipe, corpus: Corpus, args: &RunArgs, only: Option<StageName>) -> Result<Vec<Box<dyn Stage>>> {
    let root = RunDir::new(recipe.out_dir());
    if let (Some(shard), Some(stage)) = (args.shard, only.filter(|o| ROUND_STAGES.contains(o))) {
        return Ok(vec![round_stage(recipe, &root, shard, stage)?]);
    }
    let map = MapStages::new(recipe, corpus, args)?;
    let parts = args.shards.map(|count| Parts::load(&root, count)).transpose()?;
    let mut stages: Vec<Box<dyn Stage>> = match &parts {
        None => vec![Box::new(map.chunk(args.shard)), Box::new(map.embed())],
        Some(parts) => {
            map.check_parts(parts, args, only)?;
            let (corpus, files) = (map.scan.root.clone(), map.scan.files.len() as u64);
            vec![
                Box::new(strata_chunk::MergeChunks { parts: parts.clone(), corpus, files }),
                Box::new(strata_embed::MergeEmbeddings { parts: parts.clone() }),
            ]
        }
    };
    if args.shard.is_some() {
        return Ok(stages);
    }
    let embedder = Arc::new(strata_embed::LazyEmbedder::new(map.files.clone(), recipe.embed.model, &recipe.embed, args.threads));
    let llm = recipe.llm.as_ref().map(|config| {
        let api_key = std::env::var(&config.api_key_env).ok().filter(|k| !k.is_empty());
        let cache = crate::model::llm_cache_dir();
        (config, Arc::new(strata_llm::LlmClient::new(config.clone(), api_key, recipe.seed, cache)))
    });
    let emit = strata_emit::EmitStage {
        config: recipe.emit.clone(),
        domain: recipe.domain.clone(),
        seed: recipe.seed,
        tokenizer_path: map.target_path.clone(),
        llm_qa: llm.as_ref().map(|(c, client)| strata_emit::LlmQa {
            model: client.clone(),
            share: c.qa_share,
            per_passage: c.qa_per_passage,
        }),
    };
    // The ledger counts ssft_qa when the emit stage writes it.
    let ssft_qa = emit.writes().contains(&SSFT_QA);
    stages.push(Box::new(strata_taxonomy::FitStage { config: recipe.taxonomy.clone(), seed: recipe.seed }));
    if let Some(parts) = &parts {
        stages.push(Box::new(strata_taxonomy::KeywordsStage { config: recipe.taxonomy.clone(), parts: parts.clone() }));
    }
    stages.extend::<[Box<dyn Stage>; 7]>([
        Box::new(strata_taxonomy::TaxonomyStage {
            config: recipe.taxonomy.clone(),
            domain: recipe.domain.clone(),
            seed: recipe.seed,
            embedder,
            titler: llm.as_ref().filter(|(c, _)| c.titles).map(|(_, client)| client.clone() as Arc<dyn JsonModel>),
            parts: parts.clone(),
        }),
        Box::new(strata_select::SubtreesStage { config: recipe.select.clone() }),
        Box::new(strata_select::SelectStage { config: recipe.select.clone(), seed: recipe.seed, parts: parts.clone() }),
        Box::new(emit),
        Box::new(strata_index::IndexStage { parts }),
        Box::new(strata_cost::CostStage { config: recipe.cost.clone(), ssft_qa, llm_model: recipe.llm.as_ref().map(|l| l.model.clone()) }),
        Box::new(strata_report::ReportStage),
    ]);
    Ok(stages)
}

/// Shard `shard`'s part of `stage` in the run in `root`: of the taxonomy, once the reduce has
/// fitted the tree (`--until fit`); of the keywords (the label phrases' count), once it has
/// found them (`--until keywords`); of the selection, once it has grouped the passages by
/// subtree (`--until subtrees`); of the index, once it has published the chunks (`--until emit`).
fn round_stage(recipe: &Recipe, root: &RunDir, shard: Shard, stage: StageName) -> Result<Box<dyn Stage>> {
    let manifest = Manifest::load(&root.path(MANIFEST))?.unwrap_or_else(|| Manifest::new(json!(null)));
    Ok(match stage {
        StageName::Taxonomy => {
            let weight = recipe.taxonomy.document_weight;
            let count = shard.count as usize;
            Box::new(strata_taxonomy::PartPlaceStage::new(root, &manifest, weight, count).map_err(anyhow::Error::from_boxed)?)
        }
        StageName::Keywords => {
            let stage = strata_taxonomy::PartPhrasesStage::new(root, &manifest, shard.count as usize);
            Box::new(stage.map_err(anyhow::Error::from_boxed)?)
        }
        StageName::Select => {
            let (config, seed) = (recipe.select.clone(), recipe.seed);
            Box::new(strata_select::PartSelectStage::new(root, &manifest, config, seed, shard).map_err(anyhow::Error::from_boxed)?)
        }
        _ => {
            // A shard's rows of the published chunks follow the rows of the shards before it.
            let parts = Parts::load(root, shard.count)?;
            let mut all = strata_index::PartIndexStage::all(root, &manifest, &parts).map_err(anyhow::Error::from_boxed)?;
            Box::new(all.swap_remove(shard.index as usize))
        }
    })
}

/// The map stages' configuration, for the whole corpus or any of its shards.
struct MapStages<'a> {
    recipe: &'a Recipe,
    scan: CorpusScan,
    plan: Option<ShardPlan>,
    files: strata_embed::ModelFiles,
    tokenizer_path: PathBuf,
    tokenizer_sha256: String,
    target_path: PathBuf,
    target: TargetTokenizer,
    args: &'a RunArgs,
}

impl<'a> MapStages<'a> {
    fn new(recipe: &'a Recipe, (scan, plan): Corpus, args: &'a RunArgs) -> Result<Self> {
        let files = crate::model::model_files()?;
        let tokenizer_path = files.tokenizer();
        let tokenizer_sha256 = strata_core::hash::file_sha256(&tokenizer_path)
            .with_context(|| format!("the model is not prepared (no `{}`); run `make model`", tokenizer_path.display()))?;
        let (target_path, target) = target_tokenizer(recipe, &tokenizer_path, &tokenizer_sha256)?;
        Ok(Self { recipe, scan, plan, files, tokenizer_path, tokenizer_sha256, target_path, target, args })
    }

    /// The chunk stage over the corpus, or over one shard (which a sharded run has a plan for).
    fn chunk(&self, shard: Option<Shard>) -> strata_chunk::ChunkStage {
        strata_chunk::ChunkStage {
            scan: self.scan.clone(),
            tokenizer_path: self.tokenizer_path.clone(),
            tokenizer_sha256: self.tokenizer_sha256.clone(),
            config: self.recipe.chunk.clone(),
            target_path: self.target_path.clone(),
            target: self.target.clone(),
            passage_tokens: self.recipe.target.passage_tokens,
            shard: shard.zip(self.plan.clone()),
        }
    }

    fn embed(&self) -> strata_embed::EmbedStage {
        strata_embed::EmbedStage {
            config: self.recipe.embed.clone(),
            files: self.files.clone(),
            threads: self.args.threads,
            cache_dir: (!self.args.no_vector_cache).then(|| crate::model::cache_dir().join("vectors")),
            window_chunks: strata_embed::WINDOW_CHUNKS,
        }
    }

    /// Every shard's part of each map stage to merge (`only` one, or both) must be done, on
    /// this corpus and recipe: the error names the first that is not and the command that does it.
    fn check_parts(&self, parts: &Parts, args: &RunArgs, only: Option<StageName>) -> Result<()> {
        let embed = self.embed();
        let embed = FingerprintedOnce::new(&embed).map_err(anyhow::Error::from_boxed)?;
        let none = Manifest::new(json!(null));
        for (shard, dir, manifest) in parts.each() {
            let chunk = self.chunk(Some(shard));
            for stage in [&chunk as &dyn Stage, &embed].into_iter().filter(|s| only.is_none_or(|o| o == s.name())) {
                // A part whose inputs are missing (its chunks, for embed) is not done either. The
                // files' hashes are checked by the merge, as it reads them.
                if !is_recorded(dir, manifest.unwrap_or(&none), stage).unwrap_or(false) {
                    anyhow::bail!(
                        "shard {shard}: its `{name}` part in `{}` is missing or was made from other inputs; run `strata {name} --recipe {} --shard {shard}` first",
                        dir.root().display(),
                        args.recipe.display(),
                        name = stage.name().as_str(),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The stage to crash in, from `STRATA_FAULT=<stage>:<shard index>` when this run is that
/// shard: a fault switch for tests of what a crashed shard leaves and what its rerun redoes.
fn fault(args: &RunArgs) -> Result<Option<StageName>> {
    let (Some(switch), Some(shard)) = (std::env::var_os("STRATA_FAULT"), args.shard) else { return Ok(None) };
    let switch = switch.to_string_lossy();
    let parsed = switch
        .split_once(':')
        .and_then(|(stage, index)| Some((StageName::ALL.into_iter().find(|s| s.as_str() == stage)?, index.parse::<u32>().ok()?)));
    let Some((stage, index)) = parsed else {
        return Err(UsageError(format!("STRATA_FAULT=`{switch}`: write <stage>:<shard index>, e.g. embed:2")).into());
    };
    Ok((index == shard.index).then_some(stage))
}

/// Progress that aborts the process at the stage's first step, or at its end when it has no
/// step (every vector cached): a crash in the stage, its outputs made only in `.tmp/`.
struct CrashAtFirstStep<'a>(&'a dyn Progress);

fn crash() {
    tracing::error!("STRATA_FAULT: crashing on purpose");
    std::process::abort();
}

impl Progress for CrashAtFirstStep<'_> {
    fn start(&self, what: &str, total: Option<u64>) {
        self.0.start(what, total);
    }
    fn advance(&self, _n: u64) {
        crash()
    }
    fn finish(&self) {
        crash()
    }
}

/// The tokenizer that counts training tokens: the recipe's target tokenizer, else the
/// embedding model's (and the manifest says which). It is loaded where it is used: a file
/// that is no tokenizer fails the chunk stage, the first that loads it, naming the file.
fn target_tokenizer(recipe: &Recipe, embedding: &Path, embedding_sha256: &str) -> Result<(PathBuf, TargetTokenizer)> {
    let file_name = |p: &Path| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
    let Some(path) = &recipe.target.tokenizer else {
        let id = TargetTokenizer { file: file_name(embedding), sha256: embedding_sha256.to_string(), is_target: false };
        return Ok((embedding.to_path_buf(), id));
    };
    let sha256 =
        strata_core::hash::file_sha256(path).with_context(|| format!("failed to read the target tokenizer `{}`", path.display()))?;
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
    let taxonomy = manifest.stages.taxonomy.as_ref().and_then(|t| t.summary.llm_titles.as_ref());
    let emit = manifest.stages.emit.as_ref().and_then(|e| e.summary.llm_qa.as_ref());
    for (what, calls) in [("titles", taxonomy), ("questions", emit)] {
        if let Some(c) = calls {
            let failures: Vec<String> = c.failures.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
            let failures = if failures.is_empty() { "none".to_string() } else { failures.join(", ") };
            outln!(
                "LLM {what}: {} requests ({} from the cache), {} prompt and {} completion tokens; failed: {failures}",
                c.requests,
                c.cached,
                c.prompt_tokens,
                c.completion_tokens
            )?;
        }
    }
    if !manifest.skipped.is_empty() {
        outln!(
            "{} corpus files skipped (not documents); each is listed with the reason in manifest.json `skipped`",
            manifest.skipped.len()
        )?;
    }
    Ok(())
}
