//! The fit stage: when the passages outnumber `taxonomy.sample_size`, the tree is fitted on a
//! seeded sample of them and saved (`work/taxonomy_fit.json`), so that every passage can be
//! placed in it afterwards: by the taxonomy stage, or in a sharded run by each shard for its
//! own passages (`strata taxonomy --shard I/N`, `parts`). Up to the bound it saves no tree: the
//! taxonomy stage clusters every passage itself.

use crate::cluster::Cluster;
use crate::passes::ChunkVectors;
use crate::{sampled, TaxonomyConfig, TaxonomyError};
use serde_json::{json, Value};
use std::path::Path;
use strata_core::rundir::{EMBEDDINGS, WORK_CHUNKS, WORK_FIT, WORK_PASSAGES};
use strata_core::summary::FitSummary;
use strata_core::{parquet_io, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

/// The fit stage.
pub struct FitStage {
    pub config: TaxonomyConfig,
    pub seed: u64,
}

/// What the fit stage saves: the tree fitted on a sample of `passages`, or none (every
/// passage is clustered by the taxonomy stage).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Fit {
    pub passages: u64,
    pub tree: Option<Cluster>,
}

impl Fit {
    pub fn read(path: &Path) -> Result<Self, TaxonomyError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TaxonomyError::Read { path: path.to_path_buf(), stage: "fit", source })?;
        serde_json::from_str(&text).map_err(|e| TaxonomyError::Read { path: path.to_path_buf(), stage: "fit", source: e.into() })
    }

    /// The fit in `path`, which must be of the run's `passages` passages (else the fit is stale).
    pub fn read_of(path: &Path, passages: usize) -> Result<Self, TaxonomyError> {
        let fit = Self::read(path)?;
        match fit.passages == passages as u64 {
            true => Ok(fit),
            false => Err(TaxonomyError::StaleFit { path: path.to_path_buf(), fitted: fit.passages, passages }),
        }
    }
}

impl Stage for FitStage {
    fn name(&self) -> StageName {
        StageName::Fit
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, WORK_PASSAGES, EMBEDDINGS]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![WORK_FIT]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        // What the fit depends on; the labels' settings do not refit the tree.
        let c = &self.config;
        Ok(json!({
            "seed": self.seed,
            "depth": c.depth, "k_min": c.k_min, "k_max": c.k_max, "min_node_size": c.min_node_size,
            "sample_size": c.sample_size, "silhouette_tolerance": c.silhouette_tolerance, "n_runs": c.n_runs,
            "max_iterations": c.max_iterations, "document_weight": c.document_weight,
        }))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate().map_err(TaxonomyError::Config)?;
        // Below the bound the passages are only counted (the file's footer), not read.
        let passages = parquet_io::num_rows(&ctx.run.path(WORK_PASSAGES))?;
        let tree = match passages > self.config.sample_size as u64 {
            true => {
                ctx.progress.start("fit", None);
                let tree = sampled::fit(&ChunkVectors::of(ctx.run)?, &self.config, self.seed)?;
                ctx.progress.finish();
                Some(tree)
            }
            false => None,
        };
        let summary = FitSummary {
            passages,
            fitted_on_sample: tree.as_ref().map(|t| t.members.len() as u64),
            leaves: tree.as_ref().map(|t| t.leaves().len() as u64),
        };
        let path = ctx.output(WORK_FIT)?;
        let text =
            serde_json::to_string(&Fit { passages, tree }).map_err(|e| TaxonomyError::Write { path: path.clone(), source: e.into() })?;
        std::fs::write(&path, text).map_err(|source| TaxonomyError::Write { path, source })?;
        Ok(StageStats { rows_in: passages, rows_out: summary.leaves.unwrap_or(0), summary: StageSummary::Fit(summary) })
    }
}
