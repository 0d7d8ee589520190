//! The command line.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Turn a domain corpus into taxonomy-structured training data, a search index and a cost ledger"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No progress bars or summaries; errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every stage of a recipe (unchanged stages are skipped).
    Run(RunArgs),
    /// Only the ingest + chunk stage.
    Chunk(RunArgs),
    /// Only the embed stage.
    Embed(RunArgs),
    /// Only the fit stage (the tree fitted on a sample, when the passages outnumber it).
    Fit(RunArgs),
    /// Only the keywords stage (a sharded run's reduce: the tree the shards' placements make and
    /// its keywords); with --shard I/N: the shard's label phrases counted in that tree.
    Keywords(RunArgs),
    /// Only the taxonomy stage (with --shard I/N: the shard's passages placed in the fitted tree).
    Taxonomy(RunArgs),
    /// Only the subtrees stage (the budget fixed, the passages grouped by subtree).
    Subtrees(RunArgs),
    /// Only the select stage (with --shard I/N: the shard's choice in its share of the subtrees).
    Select(RunArgs),
    /// Only the emit stage (training sets and chunks.parquet).
    Emit(RunArgs),
    /// Only the index stage.
    Index(RunArgs),
    /// Only the report stage.
    Report(RunArgs),
    /// Print the recipe as a run resolves it (flags, then the recipe, then defaults; paths
    /// absolute or as given), as JSON: what an engine launching strata needs to know.
    Recipe(RunArgs),
    /// The cost ledger of each knowledge-injection route for a run, printed and saved.
    Cost(CostArgs),
    /// Search a run: BM25, dense or hybrid.
    Search(SearchArgs),
    /// Serve a run's search over HTTP JSON (POST /search, GET /health).
    Serve(ServeArgs),
    /// Measure a run: taxonomy against labels, retrieval, the subset against baselines (eval.json).
    Eval(EvalArgs),
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// The recipe (e.g. pipeline/medicine.toml).
    #[arg(long)]
    pub recipe: PathBuf,
    /// Corpus to read instead of the recipe's.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Run directory to write instead of the recipe's.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Token budget as a fraction of corpus tokens (e.g. 0.01), instead of the recipe's.
    #[arg(long)]
    pub budget: Option<f64>,
    /// Seed for clustering and sample phrasing, instead of the recipe's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The trained model's tokenizer (a Hugging Face tokenizer.json), instead of the recipe's
    /// `[target] tokenizer`: budgets, passages and sample sizes count its tokens.
    #[arg(long)]
    pub target_tokenizer: Option<PathBuf>,
    /// Rerun stages even when their inputs are unchanged.
    #[arg(long)]
    pub force: bool,
    /// Treat skipped corpus files (binary, empty, unsupported) as errors.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Embed every text afresh instead of reusing vectors cached by earlier runs.
    #[arg(long)]
    pub no_vector_cache: bool,
    /// Run one shard of the map stages (chunk, embed), e.g. 2/4 (numbered from 0), into
    /// `<out>/shards/part-IIIII-of-NNNNN/`; a shard already done on the same inputs is skipped.
    /// With `strata taxonomy`, `keywords`, `select` or `index`: the shard's part of that stage
    /// between steps of the reduce (see `--until`).
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    pub shard: Option<strata_core::Shard>,
    /// Merge the N shards' parts of the map stages (each run with --shard I/N) instead of
    /// chunking and embedding here, then run the stages after them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub shards: Option<u32>,
    /// Stop after this stage. A sharded run's reduce stops after fit, keywords, subtrees and
    /// emit for the shards' rounds (`strata taxonomy|keywords|select|index --shard I/N`), then
    /// `strata run --shards N` goes on.
    #[arg(long, value_name = "STAGE", value_parser = stage_name)]
    pub until: Option<strata_core::StageName>,
}

#[derive(Debug, Args)]
pub struct CostArgs {
    /// The run directory (e.g. out/medicine).
    #[arg(long)]
    pub run: PathBuf,
    /// Model preset (llama-1b, llama-8b, llama-70b).
    #[arg(long)]
    pub model: Option<String>,
    /// Model parameters, overriding the preset's.
    #[arg(long)]
    pub params: Option<f64>,
    /// GPU preset (a100, h100, h200, l40s, rtx4090).
    #[arg(long)]
    pub gpu: Option<String>,
    /// Model FLOPs utilisation, 0 to 1.
    #[arg(long)]
    pub mfu: Option<f64>,
    /// Price of one GPU-hour in USD.
    #[arg(long)]
    pub price_per_gpu_hour: Option<f64>,
    /// Epochs over the full corpus.
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Chunks retrieved per query for RAG.
    #[arg(long)]
    pub top_k: Option<u32>,
    /// Queries per day, for the break-even in days.
    #[arg(long)]
    pub queries_per_day: Option<f64>,
    /// Print the ledger as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The run directory (e.g. out/medicine).
    #[arg(long)]
    pub run: PathBuf,
    /// The query.
    pub query: String,
    /// Only within this taxonomy subtree, e.g. "/Cardiology".
    #[arg(long)]
    pub under: Option<String>,
    /// Number of hits.
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// bm25, dense (the run's vectors, the query embedded by the run's model) or hybrid (the
    /// two fused by reciprocal rank).
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Print hits as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run directory (e.g. out/medquad).
    #[arg(long)]
    pub run: PathBuf,
    /// Document metadata field to compare the taxonomy with (repeatable); default: every text
    /// field that is not an identifier (not distinct for every document).
    #[arg(long = "labels", value_name = "FIELD")]
    pub labels: Vec<String>,
    /// JSONL questions (`question`, `doc_id`) for retrieval and question coverage.
    #[arg(long)]
    pub questions: Option<PathBuf>,
    /// Questions used: a seeded sample when the file holds more (vector search is exact).
    #[arg(long, default_value_t = 2000)]
    pub max_questions: usize,
    /// Budgets as fractions of corpus tokens, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.003,0.01,0.05")]
    pub budgets: Vec<f64>,
    /// Seeds of the random baseline.
    #[arg(long, default_value_t = 5)]
    pub random_seeds: u64,
    /// Another run over the same corpus (another embedder, seed or setting): agreement of the
    /// two taxonomies per level and the cosine between the two runs' vectors of each chunk.
    #[arg(long, value_name = "RUN")]
    pub compare: Option<PathBuf>,
    /// Print eval.json instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The run directory (e.g. out/medicine).
    #[arg(long)]
    pub run: PathBuf,
    /// Address to listen on; port 0 picks a free one (the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub addr: String,
    /// Listen on an address other than loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Searches run at once; further requests wait their turn.
    #[arg(long, default_value_t = 4)]
    pub max_concurrency: usize,
    /// Threads of the query embedder (0: its default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

fn stage_name(name: &str) -> Result<strata_core::StageName, String> {
    let all = strata_core::StageName::ALL;
    all.into_iter().find(|s| s.as_str() == name).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        format!("`{name}` is not a stage: one of {}", names.join(", "))
    })
}
