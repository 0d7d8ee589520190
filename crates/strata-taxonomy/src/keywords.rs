//! A sharded run's label phrases, counted by the shards. Counting the phrases that hold each
//! node's keywords reads every chunk's text once more: the larger part of the taxonomy's time.
//! It needs the final tree and its keywords, which need every shard's term counts, so it is a
//! round of its own between two steps of the reduce:
//!
//! 1. the keywords stage (reduce, `strata run --shards N --until keywords`): the tree the
//!    shards' placements make, its keywords from their term counts (`parts`) and the generic
//!    headings from their heading counts, saved in `work/keywords.json`;
//! 2. each shard counts its chunks' phrases in that tree (`strata keywords --shard I/N`) into
//!    its part's `work/phrases.parquet`;
//! 3. the taxonomy stage adds the shards' counts up (integers: the sums are those of counting
//!    every chunk in one place) instead of counting, and takes the keywords from the file.
//!
//! Below `taxonomy.sample_size` (no tree fitted on a sample) or when a shard has not placed its
//! passages, the file holds no tree and the taxonomy stage does it all itself.

use crate::fit::Fit;
use crate::headings::Headings;
use crate::merged::{merged_keywords, MergedByKey};
use crate::naming::{self, Considered, Shortlist};
use crate::passes::ChunkVectors;
use crate::phrases::{NodePhrases, Tally};
use crate::{parts, Flat, TaxonomyConfig, TaxonomyError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use strata_core::manifest::Manifest;
use strata_core::parquet_io::{self, ParquetIoError};
use strata_core::records::PhraseRecord;
use strata_core::rundir::{WORK_CHUNKS, WORK_FIT, WORK_KEYWORDS, WORK_PASSAGES, WORK_PHRASES, WORK_PLACEMENTS};
use strata_core::shard::Parts;
use strata_core::summary::KeywordsSummary;
use strata_core::{PassageIndex, RunDir, Shape, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

/// What the keywords stage saves for the shards and the taxonomy stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Keywords {
    /// Each node's parent, nodes numbered as the taxonomy numbers them.
    pub parents: Vec<Option<u32>>,
    /// Per leaf of the fitted tree, the node its passages make (none: no passage reached it).
    pub node_of_leaf: Vec<Option<u32>>,
    /// Each node's keywords with their scores.
    pub keywords: Vec<Vec<(String, f64)>>,
    /// Headings of many documents: no phrase is counted from them.
    pub generic_headings: Vec<String>,
    pub vocabulary_terms: u64,
}

/// `work/keywords.json`: the keywords, or none when the taxonomy stage does it all itself.
#[derive(Serialize, Deserialize)]
struct KeywordsFile {
    tree: Option<Keywords>,
}

impl Keywords {
    pub fn read(path: &Path) -> Result<Option<Self>, TaxonomyError> {
        let read = |source| TaxonomyError::Read { path: path.to_path_buf(), stage: "keywords", source };
        let text = std::fs::read_to_string(path).map_err(read)?;
        Ok(serde_json::from_str::<KeywordsFile>(&text).map_err(|e| read(e.into()))?.tree)
    }
}

/// The keywords stage, in a sharded run's reduce.
pub struct KeywordsStage {
    pub config: TaxonomyConfig,
    pub parts: Parts,
}

impl Stage for KeywordsStage {
    fn name(&self) -> StageName {
        StageName::Keywords
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, WORK_PASSAGES, WORK_FIT]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![WORK_KEYWORDS]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        // What the file depends on besides the fit (read): the shards' placements and term
        // counts while every shard has placed its passages, and the settings the keywords and
        // generic headings are found with (the labels' own settings do not change the file).
        let placements = self.parts.fingerprint(StageName::Taxonomy).ok();
        let c = &self.config;
        let settings =
            json!({"document_weight": c.document_weight, "generic_heading_share": c.generic_heading_share, "keywords": c.keywords});
        Ok(json!({"settings": settings, "placements": placements, "keywords": 1}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate().map_err(TaxonomyError::Config)?;
        let files = ChunkVectors::of(ctx.run)?;
        let chunk_rows = files.passages.chunk_rows();
        let fit = Fit::read_of(&ctx.run.path(WORK_FIT), files.passages.count()? as usize)?;
        let placed = match &fit.tree {
            Some(_) => parts::placed_leaves(ctx, &self.parts, self.config.document_weight, &files.passages)?,
            None => None,
        };
        let tree = match (&fit.tree, placed) {
            (Some(fitted), Some(placed)) => {
                ctx.progress.start("keywords", None);
                let flat = Flat::of(fitted, placed, files.passages.clone())?;
                let headings = Headings::of_shards(&self.parts.dirs, &flat, &self.config)?;
                let node_of_leaf = flat.node_of_fitted_leaf();
                let merged = merged_keywords(&self.parts.dirs, &flat.shape, &node_of_leaf, self.config.keywords)?;
                let mut generic_headings: Vec<String> = headings.generic.into_iter().collect();
                generic_headings.sort_unstable();
                ctx.progress.finish();
                Some(Keywords {
                    parents: flat.parent_ids(),
                    node_of_leaf,
                    keywords: merged.keywords,
                    generic_headings,
                    vocabulary_terms: merged.vocabulary_terms,
                })
            }
            _ => None,
        };
        let summary = KeywordsSummary {
            placed_parts: tree.as_ref().map(|_| self.parts.dirs.len() as u64),
            nodes: tree.as_ref().map(|k| k.parents.len() as u64),
            vocabulary_terms: tree.as_ref().map(|k| k.vocabulary_terms),
        };
        let path = ctx.output(WORK_KEYWORDS)?;
        let text =
            serde_json::to_string(&KeywordsFile { tree }).map_err(|e| TaxonomyError::Write { path: path.clone(), source: e.into() })?;
        std::fs::write(&path, text).map_err(|source| TaxonomyError::Write { path, source })?;
        Ok(StageStats { rows_in: chunk_rows, rows_out: summary.nodes.unwrap_or(0), summary: StageSummary::Keywords(summary) })
    }
}

/// One shard's count of its chunks' label phrases in the run's tree (`strata keywords --shard
/// I/N`), run in the shard's run directory. When the keywords stage saved no tree, it writes
/// nothing.
pub struct PartPhrasesStage {
    /// The run's `work/keywords.json` and its hash, as the keywords stage recorded it.
    pub keywords: PathBuf,
    pub keywords_sha256: String,
    /// Whether the file holds a tree.
    pub counted: bool,
}

impl PartPhrasesStage {
    /// The shards' count of the phrases of `run`, whose `manifest` records the keywords.
    pub fn new(run: &RunDir, manifest: &Manifest, shards: usize) -> Result<Self, StageError> {
        let keywords = run.path(WORK_KEYWORDS);
        let recorded = manifest.stages.keywords.as_ref().and_then(|r| Some((r.run.outputs.get(WORK_KEYWORDS)?.clone(), r.summary.nodes)));
        let Some((keywords_sha256, nodes)) = recorded else {
            return Err(format!(
                "`{}` is not written yet: run the reduce up to the keywords first (`strata run --shards {shards} --until keywords`)",
                keywords.display()
            )
            .into());
        };
        Ok(Self { keywords, keywords_sha256, counted: nodes.is_some() })
    }
}

#[derive(serde::Deserialize)]
struct PlacedLeaf {
    leaf: u32,
}

impl Stage for PartPhrasesStage {
    fn name(&self) -> StageName {
        StageName::Keywords
    }

    fn reads(&self) -> Vec<&'static str> {
        match self.counted {
            true => vec![WORK_CHUNKS, WORK_PASSAGES, WORK_PLACEMENTS],
            false => vec![WORK_CHUNKS],
        }
    }

    fn writes(&self) -> Vec<&'static str> {
        match self.counted {
            true => vec![WORK_PHRASES],
            false => Vec::new(),
        }
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(json!({"keywords": self.keywords_sha256, "phrases": 1}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let chunks_path = ctx.run.path(WORK_CHUNKS);
        let chunk_rows = parquet_io::num_rows(&chunks_path)?;
        let summary = StageSummary::Keywords(KeywordsSummary::default());
        let stats = StageStats { rows_in: chunk_rows, rows_out: 0, summary };
        let Some(keywords) = self.counted.then(|| Keywords::read(&self.keywords)).transpose()?.flatten() else {
            return Ok(stats);
        };
        ctx.progress.start("phrases", None);
        let passages = PassageIndex::read(&ctx.run.path(WORK_PASSAGES), chunk_rows as usize)?;
        // Each passage's node: the node its leaf of the fitted tree became.
        let placements = ctx.run.path(WORK_PLACEMENTS);
        let mut node_of_passage = Vec::with_capacity(passages.len());
        for placed in parquet_io::rows::<PlacedLeaf>(&placements, &["leaf"])? {
            let leaf = placed?.leaf;
            let node = keywords.node_of_leaf.get(leaf as usize).copied().flatten();
            let node =
                node.ok_or_else(|| format!("`{}`: leaf {leaf} is not a leaf of `{}`", placements.display(), self.keywords.display()))?;
            node_of_passage.push(node);
        }
        if node_of_passage.len() != passages.len() {
            return Err(ParquetIoError::OutOfStep { path: placements }.into());
        }
        let shape = Shape::from_parents(keywords.parents)?;
        // Each node's lineage below the root: the nodes a chunk's phrases are counted into.
        let lineages: Vec<Vec<usize>> =
            (0..shape.len() as u32).map(|id| shape.lineage(id).into_iter().skip(1).map(|a| a as usize).collect()).collect();
        let generic: HashSet<String> = keywords.generic_headings.into_iter().collect();
        let seeds = naming::seeds(&keywords.keywords);
        let chunk_nodes = passages.passage_of_chunks().into_iter().map(|p| Ok(node_of_passage[p]));
        let tallies = naming::count_phrases(&chunks_path, &generic, &seeds, chunk_nodes, |node| &lineages[node as usize])?;
        let rows = tallies.records();
        parquet_io::write_rows_for_merge(&ctx.output(WORK_PHRASES)?, &PhraseRecord::fields(), &rows)?;
        ctx.progress.finish();
        Ok(StageStats { rows_out: rows.len() as u64, ..stats })
    }
}

/// The shards' phrase counts added up into each node's shortlist (`naming::Shortlist`), when
/// every shard has counted its phrases against this run's keywords (`scored`) and its file
/// still holds what it wrote; `None` when one has not (the taxonomy stage then counts every
/// chunk's phrases itself). The shards' files are sorted by node, then phrase, so they merge
/// like sorted lists, one phrase at a time: a phrase's score needs only its own counts, so no
/// phrase is held past its turn.
pub(crate) fn merged_shortlist(
    ctx: &StageContext,
    parts: &Parts,
    flat: &Flat,
    scored: &[Vec<(String, f64)>],
    keep: usize,
) -> Result<Option<Shortlist>, StageError> {
    let stage = PartPhrasesStage::new(ctx.run, ctx.manifest, parts.dirs.len())?;
    if let Some(shard) = parts.first_not_recorded(&stage) {
        tracing::info!("shard {shard} has not counted its phrases (`strata keywords --shard {shard}`): counting every chunk's here");
        return Ok(None);
    }
    let seeds = NodePhrases::new(&naming::seeds(scored));
    let mut shards = Vec::new();
    for (i, dir) in parts.dirs.iter().enumerate() {
        parts.verify(i, StageName::Keywords)?;
        let path = dir.path(WORK_PHRASES);
        shards.push((parquet_io::rows::<PhraseRecord>(&path, &["node", "phrase", "chunks", "surfaces", "surface_counts"])?, path));
    }
    let mut shortlist = Shortlist::new(flat.shape.len());
    for merged in MergedByKey::new(shards, |r: &PhraseRecord| (r.node, r.phrase.clone()), "node, then phrase")? {
        let ((node, phrase), rows) = merged?;
        let mut tally = Tally::default();
        for (s, row) in rows {
            if row.surfaces.len() != row.surface_counts.len() || node as usize >= flat.shape.len() {
                let path = parts.dirs[s].path(WORK_PHRASES);
                return Err(format!("`{}`: phrase `{phrase}` of node {node} is not a count of this run's tree", path.display()).into());
            }
            tally.add_record(row.chunks, row.surfaces, row.surface_counts);
        }
        let at = Considered { id: node as usize, size: flat.sizes[node as usize], phrases: &seeds, scored };
        shortlist.consider(at, &phrase, &tally, keep);
    }
    Ok(Some(shortlist.finish(keep)))
}
