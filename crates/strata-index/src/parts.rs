//! A sharded run's index, built by the shards: after the reduce has published
//! `chunks.parquet` (`strata run --shards N --until emit`), each shard indexes its own chunks,
//! read from the rows they hold in that file (`strata index --shard I/N`), into its part's
//! `index/`; the reduce's index stage then merges the parts' indexes with tantivy's own merge
//! (`tantivy::indexer::merge_indices`, which stacks the segments in the order given) instead of
//! tokenising every chunk itself. The merged index holds the same documents, in the same order,
//! as an index built whole: the same search results.

use crate::{index_chunks, IndexError, IndexedChunk, INDEXED_COLUMNS, SCHEMA_VERSION, TOKENIZER};
use serde_json::{json, Value};
use std::ops::Range;
use std::path::{Path, PathBuf};
use strata_core::manifest::Manifest;
use strata_core::parquet_io::{self, ParquetIoError};
use strata_core::rundir::{CHUNKS, INDEX_DIR, WORK_CHUNKS};
use strata_core::shard::Parts;
use strata_core::stage::is_recorded;
use strata_core::summary::IndexSummary;
use strata_core::{RunDir, Stage, StageContext, StageError, StageName, StageStats, StageSummary};
use tantivy::directory::MmapDirectory;
use tantivy::Index;

/// One shard's part of the index, run in the shard's run directory: its chunks, read from the
/// rows `rows` of the run's published chunks, each checked against the shard's own
/// `work/chunks.parquet` (the same chunks in the same order).
pub struct PartIndexStage {
    /// The run's published `chunks.parquet`.
    pub published: PathBuf,
    /// Its hash, as the run's emit stage recorded it.
    pub published_sha256: String,
    pub rows: Range<u64>,
}

impl PartIndexStage {
    /// Each shard's part of the index of `run`, whose `manifest` records the published chunks,
    /// in shard order: a shard's rows follow the chunks of the shards before it.
    pub fn all(run: &RunDir, manifest: &Manifest, parts: &Parts) -> Result<Vec<Self>, StageError> {
        let published = run.path(CHUNKS);
        let Some(published_sha256) = manifest.stages.run(StageName::Emit).and_then(|r| r.outputs.get(CHUNKS)).cloned() else {
            return Err(format!(
                "`{}` is not published yet: run the reduce up to emit first (`strata run --shards {} --until emit`)",
                published.display(),
                parts.dirs.len()
            )
            .into());
        };
        let mut first = 0;
        let mut all = Vec::with_capacity(parts.dirs.len());
        for dir in &parts.dirs {
            let own = parquet_io::num_rows(&dir.path(WORK_CHUNKS))?;
            all.push(Self { published: published.clone(), published_sha256: published_sha256.clone(), rows: first..first + own });
            first += own;
        }
        Ok(all)
    }
}

impl Stage for PartIndexStage {
    fn name(&self) -> StageName {
        StageName::Index
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![INDEX_DIR]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(json!({
            "tokenizer": TOKENIZER,
            "schema": SCHEMA_VERSION,
            "published": self.published_sha256,
            "rows": [self.rows.start, self.rows.end],
        }))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        #[derive(serde::Deserialize)]
        struct Id {
            chunk_id: String,
        }
        let dir = ctx.output(INDEX_DIR)?;
        std::fs::create_dir_all(&dir)?;
        let mut own = parquet_io::rows::<Id>(&ctx.run.path(WORK_CHUNKS), &["chunk_id"])?;
        let out_of_step = || ParquetIoError::OutOfStep { path: self.published.clone() };
        let published = parquet_io::batches_in::<IndexedChunk>(&self.published, &INDEXED_COLUMNS, self.rows.clone())?;
        let checked = published.map(|batch| {
            let batch = batch?;
            for chunk in &batch {
                match own.next() {
                    Some(Ok(id)) if id.chunk_id == chunk.chunk_id => {}
                    Some(Err(e)) => return Err(e),
                    _ => return Err(out_of_step()),
                }
            }
            Ok(batch)
        });
        let n = self.rows.end - self.rows.start;
        ctx.progress.start("index", Some(n));
        index_chunks(&dir, checked, ctx.progress)?;
        if own.next().is_some() {
            return Err(out_of_step().into());
        }
        ctx.progress.finish();
        Ok(StageStats { rows_in: n, rows_out: n, summary: StageSummary::Index(IndexSummary::default()) })
    }
}

/// The parts' indexes to merge, in shard order, when every shard has indexed its chunks of the
/// chunks this run published and its index still holds what it wrote; `None` when one has not
/// (the index stage then indexes every chunk itself).
pub(crate) fn current_indexes(ctx: &StageContext, parts: &Parts) -> Result<Option<Vec<PathBuf>>, StageError> {
    for ((shard, dir, manifest), stage) in parts.each().zip(PartIndexStage::all(ctx.run, ctx.manifest, parts)?) {
        if !manifest.is_some_and(|m| is_recorded(dir, m, &stage).unwrap_or(false)) {
            tracing::info!("shard {shard} has not indexed its chunks (`strata index --shard {shard}`): indexing every chunk here");
            return Ok(None);
        }
    }
    (0..parts.dirs.len()).try_for_each(|i| parts.verify(i, StageName::Index))?;
    Ok(Some(parts.dirs.iter().map(|d| d.path(INDEX_DIR)).collect()))
}

/// The indexes `parts` merged into one in `into` (empty), their documents in order.
pub(crate) fn merge(parts: &[PathBuf], into: &Path) -> Result<(), IndexError> {
    let open = |path: &PathBuf| Index::open_in_dir(path).map_err(|source| IndexError::Open { path: path.clone(), source });
    let indexes = parts.iter().map(open).collect::<Result<Vec<_>, _>>()?;
    let merge_err = |source| IndexError::Merge { path: into.to_path_buf(), source };
    let directory = MmapDirectory::open(into).map_err(|e| merge_err(e.into()))?;
    tantivy::indexer::merge_indices(&indexes, directory).map_err(merge_err)?;
    Ok(())
}
