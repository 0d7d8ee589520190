//! A sharded run's taxonomy, placed and counted by the shards: once the reduce has fitted the
//! tree on a sample (`strata run --shards N --until fit`), each shard descends its own
//! passages in it and counts its chunks' label terms and headings per fitted leaf (`strata
//! taxonomy --shard I/N`), into its part's `work/placements.parquet`, `work/terms.parquet`,
//! `work/leaf_terms.parquet` and `work/headings.parquet`. The reduce's taxonomy stage then
//! takes the passages' leaves from the parts, in shard order, and adds up their counts
//! (integers: the sums are those of counting every chunk in one place) instead of descending
//! and counting itself. What needs
//! every passage in order, the near-duplicate search within each leaf, stays in the reduce.

use crate::fit::Fit;
use crate::passes::ChunkVectors;
use crate::placed::{PlacedLeaves, PlacedWriter};
use crate::{add_chunk_texts, headings, labels, sampled};
use serde_json::{json, Value};
use std::path::PathBuf;
use strata_core::manifest::Manifest;
use strata_core::parquet_io::{self, ParquetIoError, RowWriter};
use strata_core::records::{HeadingRecord, LeafTermRecord, PlacementRecord, TermRecord};
use strata_core::rundir::{EMBEDDINGS, WORK_CHUNKS, WORK_FIT, WORK_HEADINGS, WORK_LEAF_TERMS, WORK_PASSAGES, WORK_PLACEMENTS, WORK_TERMS};
use strata_core::shard::Parts;
use strata_core::summary::TaxonomySummary;
use strata_core::{PassageIndex, PassagesFile, RunDir, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

/// One shard's part of the taxonomy, run in the shard's run directory: its passages placed in
/// the run's fitted tree and its chunks' terms and headings counted per fitted leaf. When the
/// fit saved no tree (the passages are few enough to cluster in memory), it writes nothing.
pub struct PartPlaceStage {
    /// The run's `work/taxonomy_fit.json` and its hash, as the fit stage recorded it.
    pub fit: PathBuf,
    pub fit_sha256: String,
    /// Whether the fit saved a tree.
    pub fitted: bool,
    pub document_weight: f32,
}

impl PartPlaceStage {
    /// The shards' part of the taxonomy of `run`, whose `manifest` records the fit.
    pub fn new(run: &RunDir, manifest: &Manifest, document_weight: f32, shards: usize) -> Result<Self, StageError> {
        let fit = run.path(WORK_FIT);
        let recorded = manifest.stages.fit.as_ref().and_then(|r| Some((r.run.outputs.get(WORK_FIT)?.clone(), r.summary.fitted_on_sample)));
        let Some((fit_sha256, sample)) = recorded else {
            return Err(format!(
                "`{}` is not written yet: run the reduce up to the fit first (`strata run --shards {shards} --until fit`)",
                fit.display()
            )
            .into());
        };
        Ok(Self { fit, fit_sha256, fitted: sample.is_some(), document_weight })
    }
}

impl Stage for PartPlaceStage {
    fn name(&self) -> StageName {
        StageName::Taxonomy
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, WORK_PASSAGES, EMBEDDINGS]
    }

    fn writes(&self) -> Vec<&'static str> {
        match self.fitted {
            true => vec![WORK_PLACEMENTS, WORK_TERMS, WORK_LEAF_TERMS, WORK_HEADINGS],
            false => Vec::new(),
        }
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        // `place` 3: the headings counted too (parts made before are redone).
        Ok(json!({"fit": self.fit_sha256, "document_weight": self.document_weight, "place": 3}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let chunk_rows = parquet_io::num_rows(&ctx.run.path(WORK_CHUNKS))?;
        let passages = PassageIndex::read(&ctx.run.path(WORK_PASSAGES), chunk_rows as usize)?;
        let summary = StageSummary::Taxonomy(TaxonomySummary { passages: passages.len() as u64, ..Default::default() });
        let stats = StageStats { rows_in: chunk_rows, rows_out: passages.len() as u64, summary };
        let Some(fitted) = self.fitted.then(|| Fit::read(&self.fit)).transpose()?.and_then(|fit| fit.tree) else {
            return Ok(stats);
        };
        ctx.progress.start("place", Some(passages.len() as u64));
        let files = ChunkVectors::of(ctx.run)?;
        let mut placements = RowWriter::create(&ctx.output(WORK_PLACEMENTS)?, &PlacementRecord::fields(), &[])?;
        let mut leaf_of = Vec::with_capacity(passages.len());
        let passages_path = ctx.run.path(WORK_PASSAGES);
        let mut ids = PassageIndex::ids(&passages_path)?;
        sampled::each_placed(&files, self.document_weight, &fitted, |_, _, leaf| {
            leaf_of.push(leaf);
            ctx.progress.advance(1);
            let passage_id = ids.next().transpose()?.ok_or(ParquetIoError::OutOfStep { path: passages_path.clone() })?;
            Ok(placements.push(PlacementRecord { passage_id, leaf })?)
        })?;
        placements.close()?;

        let leaves = fitted.leaves().len();
        let passage_of = passages.passage_of_chunks();
        let mut corpus = labels::Corpus::new(vec![None; leaves]);
        add_chunk_texts(&ctx.run.path(WORK_CHUNKS), &mut corpus, passage_of.iter().map(|&p| Ok(leaf_of[p])))?;
        let (terms, counts) = corpus.sorted_counts();
        let terms = terms.into_iter().map(|(term, chunks)| TermRecord { term: term.to_string(), chunks });
        parquet_io::write_rows_for_merge(&ctx.output(WORK_TERMS)?, &TermRecord::fields(), &terms.collect::<Vec<_>>())?;
        let counts: Vec<LeafTermRecord> = counts.into_iter().map(|(leaf, term, count)| LeafTermRecord { leaf, term, count }).collect();
        parquet_io::write_rows_for_merge(&ctx.output(WORK_LEAF_TERMS)?, &LeafTermRecord::fields(), &counts)?;
        let placed = passage_of.iter().map(|&p| Ok((passages.document[p], leaf_of[p])));
        let counted = headings::count(&ctx.run.path(WORK_CHUNKS), placed)?;
        parquet_io::write_rows_for_merge(&ctx.output(WORK_HEADINGS)?, &HeadingRecord::fields(), &counted)?;
        ctx.progress.finish();
        Ok(stats)
    }
}

/// The passages' leaves (by position among the fitted tree's leaves) as the shards placed
/// them, in passage order, when every shard has placed its passages in the tree this run
/// fitted and its files still hold what it wrote; `None` when one has not (the taxonomy stage
/// then places every passage itself).
pub(crate) fn placed_leaves(
    ctx: &StageContext,
    parts: &Parts,
    document_weight: f32,
    passages: &PassagesFile,
) -> Result<Option<PlacedLeaves>, StageError> {
    let stage = PartPlaceStage::new(ctx.run, ctx.manifest, document_weight, parts.dirs.len())?;
    if let Some(shard) = parts.first_not_recorded(&stage) {
        tracing::info!("shard {shard} has not placed its passages (`strata taxonomy --shard {shard}`): placing every passage here");
        return Ok(None);
    }
    let mut leaves = PlacedWriter::new(ctx)?;
    let mut ids = PassageIndex::ids(passages.path())?;
    for (i, dir) in parts.dirs.iter().enumerate() {
        parts.verify(i, StageName::Taxonomy)?;
        let path = dir.path(WORK_PLACEMENTS);
        for placed in parquet_io::rows::<PlacementRecord>(&path, &["passage_id", "leaf"])? {
            let placed = placed?;
            if ids.next().transpose()?.as_ref() != Some(&placed.passage_id) {
                return Err(ParquetIoError::OutOfStep { path }.into());
            }
            leaves.push(placed.leaf)?;
        }
    }
    let (leaves, count) = (leaves.finish()?, passages.count()?);
    if leaves.passages() != count {
        return Err(format!("the shards placed {} passages; the run has {count}", leaves.passages()).into());
    }
    Ok(Some(leaves))
}
