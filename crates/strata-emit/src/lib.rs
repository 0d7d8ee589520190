//! strata-emit: the training sets, in textbook order (depth-first over the taxonomy, then
//! document order), and the published `chunks.parquet` and `passages.parquet`.
//!
//! It owns the sample formats of DESIGN.md: SCPT passage samples (a mind map of the passage's
//! branch with its leaf in bold and the document's own sections below it, then the passage),
//! SCPT mind-map samples, SSFT samples made from the taxonomy without an LLM, StructTuning's
//! question-answer SSFT from a questions file, the ablation sets (the same passages as plain
//! text; random passages at the same budget, structured and plain) and `dataset_info.json`
//! for LLaMA-Factory. Sample sizes count target tokens. It reads the earlier stages' files;
//! it does not decide what is selected.

mod llm_qa;
mod mindmap;
mod phrasing;
mod questions;

pub use llm_qa::LlmQa;
pub use mindmap::{chunk_map, full_map, passage_map};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use strata_core::llm::{complete_all, JsonRequest, LlmCalls, LlmTally};
use strata_core::parquet_io::RowWriter;
use strata_core::questions::{read_questions, Question, QuestionsError};
use strata_core::records::{
    AssignmentRecord, ChunkRecord, PassageAssignment, PassageRecord, PublishedChunk, PublishedPassage, Sample, SelectionRecord,
    TaxonomyNode,
};
use strata_core::rundir::{
    CHUNKS, CPT, DATASET_INFO, PASSAGES, RANDOM_CPT, RANDOM_SCPT, SCPT, SSFT, SSFT_QA, TAXONOMY, WORK_ASSIGNMENTS, WORK_CHUNKS,
    WORK_PASSAGES, WORK_PASSAGE_ASSIGNMENTS, WORK_SELECTION,
};
use strata_core::summary::EmitSummary;
use strata_core::tokens::TokenCounter;
use strata_core::tokens::TokenizerError;
use strata_core::{parquet_io, Progress, Stage, StageContext, StageError, StageName, StageStats, StageSummary, TaxonomyTree};

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
    #[error("`{path}` puts `{id}` in node {node_id}, which the taxonomy lacks; rerun the taxonomy stage")]
    UnknownNode { path: PathBuf, id: String, node_id: u32 },
    #[error(transparent)]
    Questions(#[from] QuestionsError),
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing questions with the LLM failed")]
    Llm(#[source] strata_core::llm::LlmUnavailable),
}

/// What goes into the training sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmitConfig {
    /// SSFT "where does this passage belong" samples, one per selected passage.
    pub locate_samples: bool,
    /// SSFT outline and subtopic samples, one each per inner node.
    pub outline_samples: bool,
    /// The ablation sets: `cpt` (the selected passages as plain text), `random_scpt` and
    /// `random_cpt` (seeded random passages at the same budget, structured and plain).
    pub ablations: bool,
    /// A JSONL file of questions (`question`, `doc_id`, optional `answer`): StructTuning's
    /// question-answer SSFT (`ssft_qa`) from the selected passages of their documents.
    pub questions: Option<PathBuf>,
}

impl Default for EmitConfig {
    fn default() -> Self {
        Self { locate_samples: true, outline_samples: true, ablations: true, questions: None }
    }
}

/// The emit stage.
pub struct EmitStage {
    pub config: EmitConfig,
    /// The domain as it appears in prompts ("medicine").
    pub domain: String,
    pub seed: u64,
    /// The target tokenizer, which sizes the samples.
    pub tokenizer_path: PathBuf,
    /// The recipe's LLM, when it writes question answering into `ssft_qa` (`[llm] qa_share`).
    pub llm_qa: Option<LlmQa>,
}

impl EmitStage {
    /// The LLM route of `ssft_qa`, when it asks about any passage.
    fn asking(&self) -> Option<&LlmQa> {
        self.llm_qa.as_ref().filter(|q| q.share > 0.0)
    }
}

impl Stage for EmitStage {
    fn name(&self) -> StageName {
        StageName::Emit
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, WORK_PASSAGES, WORK_ASSIGNMENTS, WORK_PASSAGE_ASSIGNMENTS, WORK_SELECTION, TAXONOMY]
    }

    fn writes(&self) -> Vec<&'static str> {
        let mut files = vec![CHUNKS, PASSAGES, SCPT, SSFT, DATASET_INFO];
        if self.config.ablations {
            files.extend([CPT, RANDOM_SCPT, RANDOM_CPT]);
        }
        if self.config.questions.is_some() || self.asking().is_some() {
            files.push(SSFT_QA);
        }
        files
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        let tokenizer = strata_core::hash::file_sha256(&self.tokenizer_path)?;
        let questions = match &self.config.questions {
            Some(q) => {
                Some(strata_core::hash::file_sha256(q).map_err(|e| QuestionsError { path: q.clone(), line: 0, message: e.to_string() })?)
            }
            None => None,
        };
        let mut fingerprint =
            json!({"config": self.config, "domain": self.domain, "seed": self.seed, "tokenizer": tokenizer, "questions": questions});
        if let Some(qa) = self.asking() {
            fingerprint["llm_qa"] = json!({
                "model": qa.model.fingerprint(),
                "share": qa.share,
                "per_passage": qa.per_passage,
                "prompt": llm_qa::PROMPT_VERSION,
            });
        }
        Ok(fingerprint)
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let nodes: Vec<TaxonomyNode> = parquet_io::read_rows(&ctx.run.path(TAXONOMY))?;
        let counter = TokenCounter::from_file(&self.tokenizer_path)?;
        let tree = TaxonomyTree::new(nodes).map_err(|source| EmitError::Tree { path: ctx.run.path(TAXONOMY), source })?;
        let questions = self.config.questions.as_deref().map(read_questions).transpose()?;
        let asked: HashSet<&str> = questions.iter().flatten().map(|q| q.doc_id.as_str()).collect();
        let kept = publish(ctx, &tree, &asked)?;

        let writer = SampleWriter { tree: &tree, domain: &self.domain, seed: self.seed, counter: &counter };
        // Each set is written as soon as it is made and dropped: the stage holds one at a time.
        let mut sets = Sets { ctx, with_origin: self.asking().is_some(), written: Vec::new() };
        let (scpt, ssft) = writer.samples(&kept.selected, &self.config)?;
        let mut summary = EmitSummary { scpt_prompt_share_median: writer.prompt_share_median(&scpt)?, ..Default::default() };
        sets.write(SCPT, scpt)?;
        sets.write(SSFT, ssft)?;
        if self.config.ablations {
            sets.write(CPT, writer.plain(&kept.selected)?)?;
            sets.write(RANDOM_SCPT, writer.samples(&kept.random, &EmitConfig { locate_samples: false, ..self.config.clone() })?.0)?;
            sets.write(RANDOM_CPT, writer.plain(&kept.random)?)?;
        }
        if questions.is_some() || self.asking().is_some() {
            let mut qa = Vec::new();
            if let Some(questions) = &questions {
                (qa, summary.questions_unselected, summary.questions_unknown_document) = writer.question_answers(questions, &kept)?;
            }
            if let Some(llm) = self.asking() {
                let (written, calls) = writer.llm_question_answers(&kept.selected, llm, ctx.progress)?;
                qa.iter_mut().for_each(|s| s.origin = Some("questions".into()));
                summary.llm_qa_samples = Some(written.len() as u64);
                summary.llm_qa = Some(calls);
                qa.extend(written);
            }
            sets.write(SSFT_QA, qa)?;
        }
        let info = ctx.output(DATASET_INFO)?;
        let registered: Vec<&str> = sets.written.iter().map(|(rel, _, _)| *rel).collect();
        let text = serde_json::to_string_pretty(&dataset_info(&self.domain, &registered))
            .map_err(|e| EmitError::Write { path: info.clone(), source: e.into() })?;
        std::fs::write(&info, text + "\n").map_err(|source| EmitError::Write { path: info.clone(), source })?;

        let mut samples = 0;
        for &(rel, rows, n) in &sets.written {
            samples += rows;
            match rel {
                SCPT => (summary.scpt_samples, summary.scpt_tokens) = (rows, n),
                SSFT => (summary.ssft_samples, summary.ssft_tokens) = (rows, n),
                CPT => summary.cpt_tokens = n,
                RANDOM_SCPT => summary.random_scpt_tokens = n,
                RANDOM_CPT => summary.random_cpt_tokens = n,
                _ => (summary.ssft_qa_samples, summary.ssft_qa_tokens) = (rows, n),
            }
        }
        Ok(StageStats { rows_in: kept.n_chunks, rows_out: samples, summary: StageSummary::Emit(summary) })
    }
}

/// The training sets written so far, each with its samples and tokens.
struct Sets<'a> {
    ctx: &'a StageContext<'a>,
    /// Whether `ssft_qa` has the `origin` column (the LLM wrote some of its samples).
    with_origin: bool,
    written: Vec<(&'static str, u64, u64)>,
}

impl Sets<'_> {
    /// Writes the set `rel` and keeps its figures; the rows are dropped.
    fn write(&mut self, rel: &'static str, rows: Vec<Sample>) -> Result<(), StageError> {
        let fields = if rel == SSFT_QA && self.with_origin { Sample::fields_with_origin() } else { Sample::fields() };
        parquet_io::write_rows(&self.ctx.output(rel)?, &fields, &rows, &[])?;
        let tokens = rows.iter().map(|s| s.n_tokens as u64).sum();
        self.written.push((rel, rows.len() as u64, tokens));
        Ok(())
    }
}

/// A passage kept for the training sets: the published row and its sections (the distinct
/// heading paths of its chunks, in order).
#[derive(Debug, Clone)]
struct Kept {
    passage: PublishedPassage,
    sections: Vec<Vec<String>>,
}

/// What publishing keeps: the selected passages and the random draw's, in passage order.
struct KeptPassages {
    selected: Vec<Kept>,
    random: Vec<Kept>,
    /// The documents the questions ask about that have a passage (to tell a question about an
    /// unselected document from one about a document the corpus lacks): not every document.
    documents: HashSet<String>,
    n_chunks: u64,
}

/// Writes `chunks.parquet` and `passages.parquet`, streaming the chunks with their assignments
/// a batch at a time; passages are read alongside, as the chunks reach them (both are in
/// chunk order). Keeps only the selected and randomly drawn passages, for the training sets,
/// and which of the documents `asked` about have a passage.
fn publish(ctx: &StageContext, tree: &TaxonomyTree, asked: &HashSet<&str>) -> Result<KeptPassages, EmitError> {
    let output = |rel: &str| ctx.output(rel).map_err(|source| EmitError::Write { path: ctx.run.path(rel), source });
    let mut out = Publisher {
        ctx,
        tree,
        asked,
        placed: parquet_io::rows(&ctx.run.path(WORK_PASSAGE_ASSIGNMENTS), &[])?,
        chosen: parquet_io::rows(&ctx.run.path(WORK_SELECTION), &[])?,
        passages: parquet_io::rows(&ctx.run.path(WORK_PASSAGES), &[])?,
        chunks: RowWriter::create(&output(CHUNKS)?, &PublishedChunk::fields(), &[])?,
        passages_out: RowWriter::create(&output(PASSAGES)?, &PublishedPassage::fields(), &[])?,
        current: None,
        kept: KeptPassages { selected: Vec::new(), random: Vec::new(), documents: Default::default(), n_chunks: 0 },
    };
    let mut assignments = parquet_io::batches::<AssignmentRecord>(&ctx.run.path(WORK_ASSIGNMENTS), &[])?;
    for batch in parquet_io::batches::<ChunkRecord>(&ctx.run.path(WORK_CHUNKS), &[])? {
        let batch = batch?;
        let placed = assignments.next_in_step(batch.len())?;
        for (c, a) in batch.into_iter().zip(placed) {
            if a.chunk_id != c.chunk_id {
                return Err(out.out_of_step(WORK_ASSIGNMENTS));
            }
            out.push(c, a)?;
        }
    }
    assignments.end_in_step()?;
    out.close_passage()?;
    for (rel, more) in [
        (WORK_PASSAGES, out.passages.next().is_some()),
        (WORK_PASSAGE_ASSIGNMENTS, out.placed.next().is_some()),
        (WORK_SELECTION, out.chosen.next().is_some()),
    ] {
        if more {
            return Err(out.out_of_step(rel));
        }
    }
    let mut kept = out.kept;
    kept.n_chunks = out.chunks.rows();
    out.chunks.close()?;
    out.passages_out.close()?;
    Ok(kept)
}

/// The state of [`publish`]: the passage the chunks are in, and what is kept.
struct Publisher<'a> {
    ctx: &'a StageContext<'a>,
    tree: &'a TaxonomyTree,
    asked: &'a HashSet<&'a str>,
    /// Per passage, in order: its place, its selection and its record, read as the chunks reach it.
    placed: parquet_io::Rows<PassageAssignment>,
    chosen: parquet_io::Rows<SelectionRecord>,
    passages: parquet_io::Rows<PassageRecord>,
    chunks: RowWriter<PublishedChunk>,
    passages_out: RowWriter<PublishedPassage>,
    /// The open passage with its chunks so far, and whether the random draw took it.
    current: Option<(Kept, bool)>,
    kept: KeptPassages,
}

impl Publisher<'_> {
    fn out_of_step(&self, rel: &str) -> EmitError {
        EmitError::Io(parquet_io::ParquetIoError::OutOfStep { path: self.ctx.run.path(rel) })
    }

    /// Publishes chunk `c`, placed by `a`, opening its passage when it is the passage's first.
    fn push(&mut self, c: ChunkRecord, a: AssignmentRecord) -> Result<(), EmitError> {
        if self.current.as_ref().is_none_or(|(k, _)| k.passage.passage_id != c.passage_id) {
            self.close_passage()?;
            self.open_passage(&c)?;
        }
        let Some((k, _)) = self.current.as_mut() else { unreachable!("a passage is open") };
        if a.node_id != k.passage.node_id {
            return Err(EmitError::UnknownNode { path: self.ctx.run.path(WORK_ASSIGNMENTS), id: c.chunk_id, node_id: a.node_id });
        }
        k.passage.chunk_ids.push(c.chunk_id.clone());
        if k.sections.last() != Some(&c.heading_path) {
            k.sections.push(c.heading_path.clone());
        }
        let (taxonomy_path, selected) = (k.passage.taxonomy_path.clone(), k.passage.selected);
        self.chunks.push(PublishedChunk {
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
            taxonomy_path,
            duplicate_of: a.duplicate_of,
            selected,
            passage_id: c.passage_id,
        })?;
        Ok(())
    }

    /// Opens the next passage, which must be chunk `c`'s, with its assignment and selection.
    fn open_passage(&mut self, c: &ChunkRecord) -> Result<(), EmitError> {
        let id = c.passage_id.as_str();
        let record = next_of(&mut self.passages, id, |r| &r.passage_id)?.ok_or_else(|| self.out_of_step(WORK_PASSAGES))?;
        let a = next_of(&mut self.placed, id, |a| &a.passage_id)?.ok_or_else(|| self.out_of_step(WORK_PASSAGE_ASSIGNMENTS))?;
        let s = next_of(&mut self.chosen, id, |s| &s.passage_id)?.ok_or_else(|| self.out_of_step(WORK_SELECTION))?;
        let leaf = self.tree.get(a.node_id).map_err(|_| EmitError::UnknownNode {
            path: self.ctx.run.path(WORK_PASSAGE_ASSIGNMENTS),
            id: a.passage_id.clone(),
            node_id: a.node_id,
        })?;
        let passage = PublishedPassage {
            passage_id: record.passage_id,
            doc_id: record.doc_id,
            chunk_ids: Vec::new(),
            text: record.text,
            n_tokens: record.n_tokens,
            node_id: a.node_id,
            taxonomy_path: leaf.path.clone(),
            heading_path: c.heading_path.clone(),
            duplicate_of: a.duplicate_of,
            selected: s.selected,
        };
        self.current = Some((Kept { passage, sections: Vec::new() }, s.random));
        Ok(())
    }

    /// Writes the open passage, keeping it when selected or drawn.
    fn close_passage(&mut self) -> Result<(), EmitError> {
        let Some((k, random)) = self.current.take() else { return Ok(()) };
        self.passages_out.push(k.passage.clone())?;
        if self.asked.contains(k.passage.doc_id.as_str()) && !self.kept.documents.contains(&k.passage.doc_id) {
            self.kept.documents.insert(k.passage.doc_id.clone());
        }
        if random {
            self.kept.random.push(k.clone());
        }
        if k.passage.selected {
            self.kept.selected.push(k);
        }
        Ok(())
    }
}

/// The next row of `rows` when it is passage `id`'s; `None` when it is another's or there is
/// none (the files are out of step).
fn next_of<T: serde::de::DeserializeOwned>(
    rows: &mut parquet_io::Rows<T>,
    id: &str,
    passage_id: impl Fn(&T) -> &String,
) -> Result<Option<T>, parquet_io::ParquetIoError> {
    Ok(rows.next().transpose()?.filter(|row| passage_id(row) == id))
}

/// LLaMA-Factory's registry of the sets written (`sets`: their run paths). Structured sets
/// register as alpaca (supervised: the loss on the response only, so the mind map is context,
/// not target, as StructTuning trains); plain sets as pre-training text (`columns.prompt` =
/// `text`, LLaMA-Factory's `pt` stage).
pub fn dataset_info(domain: &str, sets: &[&str]) -> Value {
    let slug: String = domain.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
    let alpaca = json!({"prompt": "instruction", "query": "input", "response": "output"});
    let mut info = serde_json::Map::new();
    for rel in sets {
        // dataset_info.json sits beside the sets: their names relative to train/.
        let file = rel.rsplit('/').next().unwrap_or(rel);
        let name = file.trim_end_matches(".parquet");
        let entry = if *rel == CPT || *rel == RANDOM_CPT {
            json!({"file_name": file, "columns": {"prompt": "text"}})
        } else {
            json!({"file_name": file, "formatting": "alpaca", "columns": alpaca})
        };
        info.insert(format!("strata_{slug}_{name}"), entry);
    }
    Value::Object(info)
}

struct SampleWriter<'a> {
    tree: &'a TaxonomyTree,
    domain: &'a str,
    seed: u64,
    counter: &'a TokenCounter,
}

impl SampleWriter<'_> {
    /// SCPT and SSFT samples in textbook order: each depth-1 branch's mind map, then its
    /// passages leaf by leaf (depth-first), each leaf's passages in document order.
    fn samples(&self, passages: &[Kept], config: &EmitConfig) -> Result<(Vec<Sample>, Vec<Sample>), EmitError> {
        let root = 0;
        let mut by_leaf: BTreeMap<u32, Vec<&Kept>> = BTreeMap::new();
        passages.iter().for_each(|k| by_leaf.entry(k.passage.node_id).or_default().push(k));
        let mut scpt = Vec::new();
        let mut ssft = Vec::new();
        for &branch in self.tree.children(root) {
            let b = self.tree.node(branch);
            let prompt = phrasing::structure_request(self.seed, &format!("map/{branch}"), self.domain, &b.label);
            scpt.push(self.sample("mindmap", None, b, prompt, format!("```\n{}\n```", full_map(self.tree, branch)), None)?);
            for id in self.tree.subtree(branch) {
                for k in by_leaf.get(&id).into_iter().flatten() {
                    scpt.push(self.passage_sample(k)?);
                    if config.locate_samples {
                        ssft.push(self.locate_sample(&k.passage)?);
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

    /// The median share of target tokens the prompt takes in the passage samples of `scpt`.
    fn prompt_share_median(&self, scpt: &[Sample]) -> Result<f64, EmitError> {
        let mut shares = Vec::new();
        for s in scpt.iter().filter(|s| s.kind == "passage") {
            shares.push(self.counter.count(&s.prompt)? as f64 / s.n_tokens.max(1) as f64);
        }
        shares.sort_by(f64::total_cmp);
        Ok(match shares.len() {
            0 => 0.0,
            n if n % 2 == 1 => shares[n / 2],
            n => (shares[n / 2 - 1] + shares[n / 2]) / 2.0,
        })
    }

    /// The passages as plain text in textbook order (continual pre-training without
    /// structure): `text` is the passage, `prompt` empty.
    fn plain(&self, passages: &[Kept]) -> Result<Vec<Sample>, EmitError> {
        let mut order: Vec<&Kept> = passages.iter().collect();
        // Node ids are a depth-first preorder: sorting by leaf (stably) is the textbook order.
        order.sort_by_key(|k| k.passage.node_id);
        order
            .iter()
            .map(|k| {
                self.sample(
                    "passage",
                    Some(&k.passage.passage_id),
                    self.tree.node(k.passage.node_id),
                    String::new(),
                    k.passage.text.clone(),
                    None,
                )
            })
            .collect()
    }

    /// StructTuning's question-answer SSFT: each question whose document has a selected
    /// passage, answered from the passage that shares most words with it, in the plain and
    /// the structure-first layout. Also counts the questions about unselected documents and
    /// those naming a document the corpus lacks.
    fn question_answers(&self, questions: &[Question], kept: &KeptPassages) -> Result<(Vec<Sample>, u64, u64), EmitError> {
        let mut by_doc: HashMap<&str, Vec<&Kept>> = HashMap::new();
        kept.selected.iter().for_each(|k| by_doc.entry(k.passage.doc_id.as_str()).or_default().push(k));
        let (mut samples, mut unselected, mut unknown) = (Vec::new(), 0, 0);
        let instruction = questions::instruction(self.domain);
        for q in questions {
            let Some(candidates) = by_doc.get(q.doc_id.as_str()) else {
                if kept.documents.contains(&q.doc_id) {
                    unselected += 1;
                } else {
                    unknown += 1;
                }
                continue;
            };
            let texts: Vec<&str> = candidates.iter().map(|k| k.passage.text.as_str()).collect();
            let k = candidates[questions::locate(&q.question, &texts).unwrap_or(0)];
            let (leaf, scope) = (self.tree.node(k.passage.node_id), &self.branch(k.passage.node_id).label);
            let map = passage_map(self.tree, k.passage.node_id, &k.sections);
            let located = questions::Located {
                map: &map,
                scope,
                leaf: &leaf.label,
                path: &leaf.path,
                section: &k.passage.heading_path,
                passage: &k.passage.text,
                answer: q.answer.as_deref(),
            };
            let prompt = questions::prompt(&instruction, &q.question);
            for (kind, response) in [("qa", questions::plain_answer(&located)), ("qa_structure", questions::structured_answer(&located))] {
                let alpaca = Some((instruction.clone(), q.question.clone()));
                samples.push(self.sample(kind, Some(&k.passage.passage_id), leaf, prompt.clone(), response, alpaca)?);
            }
        }
        Ok((samples, unselected, unknown))
    }

    /// StructTuning's question-answer SSFT written by the LLM: for each selected passage in
    /// the seeded draw, its questions in the plain and the structure-first layout, marked
    /// `origin = llm`. Returns the samples and how the calls went.
    fn llm_question_answers(&self, selected: &[Kept], llm: &LlmQa, progress: &dyn Progress) -> Result<(Vec<Sample>, LlmCalls), EmitError> {
        let drawn: Vec<&Kept> = selected.iter().filter(|k| llm_qa::drawn(self.seed, &k.passage.passage_id, llm.share)).collect();
        let requests: Vec<JsonRequest> = drawn
            .iter()
            .map(|k| {
                let path = &self.tree.node(k.passage.node_id).path;
                llm_qa::request(self.domain, path, &k.passage.heading_path, &k.passage.text, llm.per_passage)
            })
            .collect();
        let tally = LlmTally::default();
        progress.start("questions (LLM)", Some(requests.len() as u64));
        let replies = complete_all(llm.model.as_ref(), &requests, progress, &tally).map_err(EmitError::Llm)?;
        progress.finish();
        let instruction = questions::instruction(self.domain);
        let mut samples = Vec::new();
        for (k, reply) in drawn.iter().zip(replies) {
            let Ok(reply) = reply else { continue };
            let Some(items) = tally.checked(llm_qa::accept(&reply.value, llm.per_passage)) else { continue };
            let (leaf, scope) = (self.tree.node(k.passage.node_id), &self.branch(k.passage.node_id).label);
            let map = passage_map(self.tree, k.passage.node_id, &k.sections);
            for item in items.into_iter().filter_map(|item| tally.checked(item)) {
                let prompt = questions::prompt(&instruction, &item.question);
                let structured = questions::layout(scope, &map, &item.explanation, &item.answer);
                for (kind, response) in [("qa", item.answer.clone()), ("qa_structure", structured)] {
                    let alpaca = Some((instruction.clone(), item.question.clone()));
                    let mut sample = self.sample(kind, Some(&k.passage.passage_id), leaf, prompt.clone(), response, alpaca)?;
                    sample.origin = Some("llm".into());
                    samples.push(sample);
                }
            }
        }
        Ok((samples, tally.finish()))
    }

    fn passage_sample(&self, k: &Kept) -> Result<Sample, EmitError> {
        let p = &k.passage;
        let (leaf, branch) = (self.tree.node(p.node_id), self.branch(p.node_id));
        let map = passage_map(self.tree, p.node_id, &k.sections);
        let prompt = format!(
            "{}:\n\n```\n{}\n```\n\n{}:",
            phrasing::lead_in(self.seed, &p.passage_id, self.domain, &branch.label),
            map,
            phrasing::passage_intro(self.seed, &p.passage_id, &branch.label, &leaf.label),
        );
        self.sample("passage", Some(&p.passage_id), leaf, prompt, format!("{}\n{}", leaf.label, p.text), None)
    }

    fn locate_sample(&self, p: &PublishedPassage) -> Result<Sample, EmitError> {
        let leaf = self.tree.node(p.node_id);
        let instruction = format!(
            "Where does the following passage belong in the knowledge structure of {}? Answer with its path from the top-level topic down.",
            self.domain
        );
        let prompt = format!("{instruction}\n\n{}", p.text);
        self.sample("locate", Some(&p.passage_id), leaf, prompt, leaf.path.join(" > "), Some((instruction, p.text.clone())))
    }

    /// The depth-1 branch above `node` (the node itself at depth 1, the root for the root).
    fn branch(&self, node: u32) -> &TaxonomyNode {
        self.tree.node(self.tree.branch_lineage(node).first().copied().unwrap_or(node))
    }

    /// A sample with `text` = prompt, newline, response. `alpaca` gives (instruction, input)
    /// when they differ from (prompt, "").
    fn sample(
        &self,
        kind: &str,
        passage_id: Option<&str>,
        node: &TaxonomyNode,
        prompt: String,
        response: String,
        alpaca: Option<(String, String)>,
    ) -> Result<Sample, EmitError> {
        // Plain text (no prompt) is the response alone.
        let text = if prompt.is_empty() { response.clone() } else { format!("{prompt}\n{response}") };
        let n_tokens = self.counter.count(&text)? as u32;
        let (instruction, input) = alpaca.unwrap_or_else(|| (prompt.clone(), String::new()));
        Ok(Sample {
            output: response.clone(),
            text,
            prompt,
            response,
            kind: kind.to_string(),
            // Every sample is of a passage or of the taxonomy; none is of one chunk.
            chunk_id: None,
            passage_id: passage_id.map(str::to_string),
            node_id: node.node_id,
            taxonomy_path: node.path.clone(),
            n_tokens,
            instruction,
            input,
            origin: None,
        })
    }
}
