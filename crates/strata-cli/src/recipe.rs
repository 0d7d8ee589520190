//! Recipes: one TOML per domain in `pipeline/`. Precedence: command-line flag, then recipe,
//! then each stage's defaults; the resolved recipe goes into the manifest.

use crate::cli::RunArgs;
use crate::UsageError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use strata_chunk::{ChunkConfig, TargetConfig};
use strata_cost::CostConfig;
use strata_embed::EmbedConfig;
use strata_emit::EmitConfig;
use strata_llm::LlmConfig;
use strata_select::SelectConfig;
use strata_taxonomy::TaxonomyConfig;

/// Everything a run needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The domain: the taxonomy's root label and the name used in prompts.
    pub domain: String,
    /// Corpus folder or file; relative paths start at the repository root (the folder above
    /// `pipeline/`) or, for a recipe elsewhere, at the recipe's folder.
    pub corpus: PathBuf,
    /// Run directory; defaults to `out/<domain>`.
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Seed of every random choice (k-means, sampling, phrasing).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Turn skipped corpus files into errors.
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub target: TargetConfig,
    #[serde(default)]
    pub chunk: ChunkConfig,
    #[serde(default)]
    pub embed: EmbedConfig,
    #[serde(default)]
    pub taxonomy: TaxonomyConfig,
    #[serde(default)]
    pub select: SelectConfig,
    #[serde(default)]
    pub emit: EmitConfig,
    #[serde(default)]
    pub cost: CostConfig,
    /// The optional LLM (titles, question answering); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmConfig>,
}

fn default_seed() -> u64 {
    42
}

impl Recipe {
    /// Reads the recipe at `path`, applies the flags in `args`, resolves paths and checks
    /// every value.
    pub fn load(args: &RunArgs) -> Result<Self, UsageError> {
        let path = &args.recipe;
        let text = std::fs::read_to_string(path).map_err(|e| UsageError(format!("failed to read the recipe `{}`: {e}", path.display())))?;
        let mut recipe: Recipe = toml::from_str(&text).map_err(|e| UsageError(format!("invalid recipe `{}`: {e}", path.display())))?;
        let base = base_dir(path);
        recipe.corpus = match &args.corpus {
            Some(c) => c.clone(),
            None => base.join(&recipe.corpus),
        };
        recipe.out = Some(match (&args.out, &recipe.out) {
            (Some(o), _) => o.clone(),
            (None, Some(o)) => base.join(o),
            (None, None) => base.join("out").join(&recipe.domain),
        });
        if let Some(b) = args.budget {
            recipe.select.budget = b;
            recipe.select.budget_tokens = None;
        }
        if let Some(s) = args.seed {
            recipe.seed = s;
        }
        recipe.target.tokenizer = match (&args.target_tokenizer, &recipe.target.tokenizer) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(t)) => Some(home_or(&base, t)),
            (None, None) => None,
        };
        recipe.emit.questions = recipe.emit.questions.as_ref().map(|q| home_or(&base, q));
        recipe.strict |= args.strict;
        recipe.validate().map_err(|e| UsageError(format!("invalid recipe `{}`: {e}", path.display())))?;
        Ok(recipe)
    }

    pub fn out_dir(&self) -> &Path {
        self.out.as_deref().unwrap_or(Path::new("out"))
    }

    fn validate(&self) -> Result<(), String> {
        if self.domain.trim().is_empty() {
            return Err("`domain` is empty".into());
        }
        self.chunk.validate()?;
        self.embed.validate()?;
        self.target.validate(&self.chunk)?;
        self.taxonomy.validate()?;
        self.select.validate()?;
        self.cost.validate().map_err(|e| e.to_string())?;
        self.llm.as_ref().map_or(Ok(()), LlmConfig::validate)?;
        Ok(())
    }
}

/// A recipe path: `~/...` under the home folder (model caches live there), else relative to
/// `base`.
fn home_or(base: &Path, path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => base.join(path),
    }
}

/// Relative recipe paths start at the folder above `pipeline/`, else at the recipe's folder.
fn base_dir(recipe: &Path) -> PathBuf {
    let dir = recipe.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|n| n == "pipeline") {
        dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}
