//! strata-emit: the training sets, in textbook order (depth-first over the taxonomy, then
//! document order), and the published `chunks.parquet`.
//!
//! It owns the sample formats of DESIGN.md: SCPT chunk samples (a mind map of the chunk's
//! branch with its leaf in bold, then the passage), SCPT mind-map samples, SSFT samples made
//! from the taxonomy without an LLM, and `dataset_info.json` for LLaMA-Factory. It reads the
//! earlier stages' files; it does not decide what is selected.

mod mindmap;
mod phrasing;

pub use mindmap::{chunk_map, full_map};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use strata_core::parquet_io::RowWriter;
use strata_core::records::{AssignmentRecord, ChunkRecord, PublishedChunk, Sample, SelectionRecord, TaxonomyNode};
use strata_core::rundir::{CHUNKS, DATASET_INFO, SCPT, SSFT, TAXONOMY, WORK_ASSIGNMENTS, WORK_CHUNKS, WORK_SELECTION};
use strata_core::summary::EmitSummary;
use strata_core::tokens::TokenCounter;
use strata_core::tokens::TokenizerError;
use strata_core::{parquet_io, Stage, StageContext, StageError, StageName, StageStats, StageSummary, TaxonomyTree};

/// Why the emit stage failed.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error(transparent)]
    Io(#[from] parquet_io::ParquetIoError),
    #[error(transparent)]
    Tokens(#[from] TokenizerError),
    #[error("`{path}` is not a valid taxonomy; rerun the taxonomy stage")]
    Tree {
        path: PathBuf,
        #[source]
        source: strata_core::TreeError,
    },
    #[error("`{path}` puts chunk `{chunk_id}` in node {node_id}, which the taxonomy lacks; rerun the taxonomy stage")]
    UnknownNode { path: PathBuf, chunk_id: String, node_id: u32 },
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What goes into the training sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmitConfig {
    /// SSFT "where does this passage belong" samples, one per selected chunk.
    pub locate_samples: bool,
    /// SSFT outline and subtopic samples, one each per inner node.
    pub outline_samples: bool,
}

impl Default for EmitConfig {
    fn default() -> Self {
        Self { locate_samples: true, outline_samples: true }
    }
}

/// The emit stage.
pub struct EmitStage {
    pub config: EmitConfig,
    /// The domain as it appears in prompts ("medicine").
    pub domain: String,
    pub seed: u64,
    pub tokenizer_path: PathBuf,
}

impl Stage for EmitStage {
    fn name(&self) -> StageName {
        StageName::Emit
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, WORK_ASSIGNMENTS, WORK_SELECTION, TAXONOMY]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![CHUNKS, SCPT, SSFT, DATASET_INFO]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        let tokenizer = strata_core::hash::file_sha256(&self.tokenizer_path)?;
        Ok(json!({"config": self.config, "domain": self.domain, "seed": self.seed, "tokenizer": tokenizer}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let nodes: Vec<TaxonomyNode> = parquet_io::read_rows(&ctx.run.path(TAXONOMY))?;
        let counter = TokenCounter::from_file(&self.tokenizer_path)?;
        let tree = TaxonomyTree::new(nodes).map_err(|source| EmitError::Tree { path: ctx.run.path(TAXONOMY), source })?;

        // The published chunks stream through, a batch of each input in step; only the
        // selected ones are kept, for the training sets.
        let mut published = RowWriter::create(&ctx.output(CHUNKS)?, &PublishedChunk::fields(), &[])?;
        let mut by_leaf: BTreeMap<u32, Vec<PublishedChunk>> = BTreeMap::new();
        let mut assignments = parquet_io::batches::<AssignmentRecord>(&ctx.run.path(WORK_ASSIGNMENTS), &[])?;
        let mut selection = parquet_io::batches::<SelectionRecord>(&ctx.run.path(WORK_SELECTION), &[])?;
        for batch in parquet_io::batches::<ChunkRecord>(&ctx.run.path(WORK_CHUNKS), &[])? {
            let batch = batch?;
            let (placed, chosen) = (assignments.next_in_step(batch.len())?, selection.next_in_step(batch.len())?);
            for ((c, a), s) in batch.into_iter().zip(placed).zip(chosen) {
                if a.chunk_id != c.chunk_id || s.chunk_id != c.chunk_id {
                    let path = if a.chunk_id != c.chunk_id { assignments.path() } else { selection.path() };
                    return Err(parquet_io::ParquetIoError::OutOfStep { path: path.to_path_buf() }.into());
                }
                let Ok(leaf) = tree.get(a.node_id) else {
                    return Err(EmitError::UnknownNode {
                        path: assignments.path().to_path_buf(),
                        chunk_id: c.chunk_id,
                        node_id: a.node_id,
                    }
                    .into());
                };
                let row = PublishedChunk {
                    chunk_id: c.chunk_id,
                    doc_id: c.doc_id,
                    source: c.source,
                    ordinal: c.ordinal,
                    heading_path: c.heading_path,
                    text: c.text,
                    n_tokens: c.n_tokens,
                    byte_start: c.byte_start,
                    byte_end: c.byte_end,
                    node_id: a.node_id,
                    taxonomy_path: leaf.path.clone(),
                    duplicate_of: a.duplicate_of,
                    selected: s.selected,
                };
                if row.selected {
                    by_leaf.entry(row.node_id).or_default().push(row.clone());
                }
                published.push(row)?;
            }
        }
        assignments.end_in_step()?;
        selection.end_in_step()?;
        let n_chunks = published.rows();
        published.close()?;

        let writer = SampleWriter { tree: &tree, domain: &self.domain, seed: self.seed, counter: &counter };
        let (scpt, ssft) = writer.samples(&by_leaf, &self.config)?;
        parquet_io::write_rows(&ctx.output(SCPT)?, &Sample::fields(), &scpt, &[])?;
        parquet_io::write_rows(&ctx.output(SSFT)?, &Sample::fields(), &ssft, &[])?;
        let info = ctx.output(DATASET_INFO)?;
        let text = serde_json::to_string_pretty(&dataset_info(&self.domain))
            .map_err(|e| EmitError::Write { path: info.clone(), source: e.into() })?;
        std::fs::write(&info, text + "\n").map_err(|source| EmitError::Write { path: info.clone(), source })?;

        let tokens = |set: &[Sample]| set.iter().map(|s| s.n_tokens as u64).sum::<u64>();
        let summary = EmitSummary {
            scpt_samples: scpt.len() as u64,
            ssft_samples: ssft.len() as u64,
            scpt_tokens: tokens(&scpt),
            ssft_tokens: tokens(&ssft),
        };
        Ok(StageStats { rows_in: n_chunks, rows_out: (scpt.len() + ssft.len()) as u64, summary: StageSummary::Emit(summary) })
    }
}

/// LLaMA-Factory's registry of the sets: alpaca columns for supervised training with the loss
/// on the response (as StructTuning trains), and the plain `text` column for pre-training.
pub fn dataset_info(domain: &str) -> Value {
    let slug: String = domain.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
    let alpaca = json!({"prompt": "instruction", "query": "input", "response": "output"});
    // dataset_info.json sits beside the sets: their names relative to train/.
    let [scpt, ssft] = [SCPT, SSFT].map(|rel| rel.rsplit('/').next().unwrap_or(rel));
    json!({
        format!("strata_{slug}_scpt"): {"file_name": scpt, "formatting": "alpaca", "columns": alpaca},
        format!("strata_{slug}_scpt_pt"): {"file_name": scpt, "columns": {"prompt": "text"}},
        format!("strata_{slug}_ssft"): {"file_name": ssft, "formatting": "alpaca", "columns": alpaca},
    })
}

struct SampleWriter<'a> {
    tree: &'a TaxonomyTree,
    domain: &'a str,
    seed: u64,
    counter: &'a TokenCounter,
}

impl SampleWriter<'_> {
    /// SCPT and SSFT samples in textbook order: each depth-1 branch's mind map, then its
    /// selected chunks leaf by leaf (depth-first), each leaf's chunks in document order.
    fn samples(&self, by_leaf: &BTreeMap<u32, Vec<PublishedChunk>>, config: &EmitConfig) -> Result<(Vec<Sample>, Vec<Sample>), EmitError> {
        let root = 0;
        let mut scpt = Vec::new();
        let mut ssft = Vec::new();
        for &branch in self.tree.children(root) {
            let b = self.tree.node(branch);
            let prompt = phrasing::structure_request(self.seed, &format!("map/{branch}"), self.domain, &b.label);
            scpt.push(self.sample("mindmap", None, b, prompt, format!("```\n{}\n```", full_map(self.tree, branch)), None)?);
            for id in self.tree.subtree(branch) {
                for c in by_leaf.get(&id).into_iter().flatten() {
                    scpt.push(self.chunk_sample(c)?);
                    if config.locate_samples {
                        ssft.push(self.locate_sample(c)?);
                    }
                }
            }
        }
        if config.outline_samples {
            for id in self.tree.subtree(root) {
                let kids = self.tree.children(id);
                if kids.is_empty() {
                    continue;
                }
                let n = self.tree.node(id);
                // The root is the domain itself: not "the structure of medicine in medicine".
                let scope = if id == root { self.domain.to_string() } else { format!("{} in {}", n.label, self.domain) };
                let outline = format!("Outline the structure of {scope} as a mind map.");
                ssft.push(self.sample(
                    "outline",
                    None,
                    n,
                    outline.clone(),
                    format!("```\n{}\n```", full_map(self.tree, id)),
                    Some((outline, String::new())),
                )?);
                let list = format!("List the subtopics of {scope}.");
                let items: Vec<String> = kids.iter().map(|&k| format!("- {}", self.tree.node(k).label)).collect();
                ssft.push(self.sample("subtopics", None, n, list.clone(), items.join("\n"), Some((list, String::new())))?);
            }
        }
        Ok((scpt, ssft))
    }

    fn chunk_sample(&self, c: &PublishedChunk) -> Result<Sample, EmitError> {
        let leaf = self.tree.node(c.node_id);
        let lineage = self.tree.branch_lineage(c.node_id);
        let branch = lineage.first().map_or(leaf, |&b| self.tree.node(b));
        let map = chunk_map(self.tree, c.node_id);
        let prompt = format!(
            "{}:\n\n```\n{}\n```\n\n{}:",
            phrasing::lead_in(self.seed, &c.chunk_id, self.domain, &branch.label),
            map,
            phrasing::passage_intro(self.seed, &c.chunk_id, &branch.label, &leaf.label),
        );
        self.sample("chunk", Some(c.chunk_id.clone()), leaf, prompt, format!("{}\n{}", leaf.label, c.text), None)
    }

    fn locate_sample(&self, c: &PublishedChunk) -> Result<Sample, EmitError> {
        let leaf = self.tree.node(c.node_id);
        let instruction = format!(
            "Where does the following passage belong in the knowledge structure of {}? Answer with its path from the top-level topic down.",
            self.domain
        );
        let prompt = format!("{instruction}\n\n{}", c.text);
        let output = leaf.path.join(" > ");
        self.sample("locate", Some(c.chunk_id.clone()), leaf, prompt, output, Some((instruction, c.text.clone())))
    }

    /// A sample with `text` = prompt, newline, response. `alpaca` gives (instruction, input)
    /// when they differ from (prompt, "").
    fn sample(
        &self,
        kind: &str,
        chunk_id: Option<String>,
        node: &TaxonomyNode,
        prompt: String,
        response: String,
        alpaca: Option<(String, String)>,
    ) -> Result<Sample, EmitError> {
        let text = format!("{prompt}\n{response}");
        let n_tokens = self.counter.count(&text)? as u32;
        let (instruction, input) = alpaca.unwrap_or_else(|| (prompt.clone(), String::new()));
        Ok(Sample {
            output: response.clone(),
            text,
            prompt,
            response,
            kind: kind.to_string(),
            chunk_id,
            node_id: node.node_id,
            taxonomy_path: node.path.clone(),
            n_tokens,
            instruction,
            input,
        })
    }
}
