//! strata-report: `report.html`, one self-contained page about a run for people who never
//! used the tool: summary figures, the taxonomy as a collapsible tree and as a treemap with
//! the selected share, the cost ledger with a cumulative-cost chart, the evaluation's coverage
//! table when `eval.json` exists, and the run's configuration and timings.
//!
//! It owns the page ([`render`], pure) and the `report` stage ([`ReportStage`]). It does not
//! compute anything the page shows beyond sums over the tree: the ledger comes from
//! `cost.json` (`strata-cost`), the coverage figures from `eval.json`, the timings from the
//! manifest. The page loads nothing from the network.

mod chart;
mod html;
mod page;
pub mod sample;
mod tree;
mod treemap;

pub use page::render;
pub use treemap::{squarify, Rect};

use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use strata_core::ledger::Ledger;
use strata_core::manifest::Manifest;
use strata_core::parquet_io::{batches, read_rows};
use strata_core::records::{PublishedChunk, TaxonomyNode};
use strata_core::rundir::{CHUNKS, COST, MANIFEST, REPORT, TAXONOMY};
use strata_core::summary::ReportSummary;
use strata_core::{RunDir, Stage, StageContext, StageError, StageName, StageStats, StageSummary, TaxonomyTree};

pub use strata_core::rundir::EVAL;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("failed to read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    /// `manifest.json`: configuration, timings, `stages.select.budget_tokens`.
    pub manifest: Option<Manifest>,
    /// `taxonomy.parquet`, checked.
    pub taxonomy: TaxonomyTree,
    /// `chunks.parquet`'s selected and medoid chunks, what the page shows (the selection's
    /// sizes per node, the medoids' text); the others' text is dropped.
    pub chunks: Vec<PublishedChunk>,
    /// Chunks in `chunks.parquet`, all of them.
    pub n_chunks: u64,
    /// `cost.json`.
    pub ledger: Ledger,
    /// `eval.json`, when the run has one.
    pub eval: Option<Value>,
}

fn read_error<E: Into<Box<dyn std::error::Error + Send + Sync>>>(path: &Path) -> impl FnOnce(E) -> ReportError {
    let path = path.to_path_buf();
    move |e| ReportError::Read { path, source: e.into() }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let bytes = std::fs::read(path).map_err(read_error(path))?;
    serde_json::from_slice(&bytes).map_err(read_error(path))
}

/// Reads a run directory's inputs for the page, keeping only the text of medoid chunks.
pub fn load(run: &RunDir) -> Result<ReportInputs, ReportError> {
    let nodes: Vec<TaxonomyNode> = read_rows(&run.path(TAXONOMY)).map_err(read_error(&run.path(TAXONOMY)))?;
    let taxonomy = TaxonomyTree::new(nodes).map_err(read_error(&run.path(TAXONOMY)))?;
    let medoids: HashSet<String> = taxonomy.nodes().iter().filter_map(|n| n.medoid_chunk_id.clone()).collect();
    // A batch at a time, keeping the selected chunks and the medoids: memory follows the
    // subset, not the corpus.
    let path = run.path(CHUNKS);
    let (mut chunks, mut n_chunks): (Vec<PublishedChunk>, u64) = (Vec::new(), 0);
    for batch in batches::<PublishedChunk>(&path, &[]).map_err(read_error(&path))? {
        let batch = batch.map_err(read_error(&path))?;
        n_chunks += batch.len() as u64;
        chunks.extend(batch.into_iter().filter_map(|mut c| match medoids.contains(&c.chunk_id) {
            true => Some(c),
            false if c.selected => {
                c.text = String::new();
                Some(c)
            }
            false => None,
        }));
    }
    let ledger = read_json(&run.path(COST))?;
    let manifest = Manifest::load(&run.path(MANIFEST)).map_err(read_error(&run.path(MANIFEST)))?;
    let eval_path = run.path(EVAL);
    let eval = if eval_path.exists() { Some(read_json(&eval_path)?) } else { None };
    Ok(ReportInputs { manifest, taxonomy, chunks, n_chunks, ledger, eval })
}

/// The `report` stage: renders `report.html` from the run directory.
///
/// Its fingerprint cannot see `eval.json` or the manifest's timings, so it always reruns
/// (`StageName::always_reruns`).
pub struct ReportStage;

impl Stage for ReportStage {
    fn name(&self) -> StageName {
        StageName::Report
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![TAXONOMY, CHUNKS, COST]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![REPORT]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(json!({ "page": 1 }))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let inputs = load(ctx.run)?;
        let html = render(&inputs);
        let path = ctx.output(REPORT).map_err(|source| ReportError::Write { path: ctx.run.path(REPORT), source })?;
        std::fs::write(&path, &html).map_err(|source| ReportError::Write { path: ctx.run.path(REPORT), source })?;
        let tree = tree::Tree::build(&inputs.taxonomy, &inputs.chunks);
        let (covered, leaves) = tree.leaf_coverage();
        let summary = ReportSummary { leaves_covered: covered as u64, leaves: leaves as u64, report_bytes: html.len() as u64 };
        Ok(StageStats { rows_in: inputs.n_chunks, rows_out: 1, summary: StageSummary::Report(summary) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample_inputs;
    use strata_core::parquet_io::write_rows;
    use strata_core::stage::run_stage;
    use strata_core::NoProgress;

    #[test]
    fn page_has_every_part() {
        let html = render(&sample_inputs());
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert!(html.contains("<title>Domain corpus report: medicine</title>"));
        assert_eq!(html.matches("<details").count() - 3, 1 + 3 + 8, "a details per node, plus eval and config");
        assert!(html.contains("<svg class=\"treemap\"") && html.matches("class=\"tm-leaf\"").count() == 8);
        assert!(html.contains("<table class=\"ledger\">") && html.contains("Continual pre-training, full corpus"));
        assert!(html.contains("<svg class=\"chart\"") && html.matches("<polyline").count() == 6);
        assert!(html.matches("class=\"break-even\"").count() >= 3);
        assert!(html.contains("<table class=\"coverage\">") && html.contains("facility location"));
        assert!(html.contains("<table class=\"stages\">") && html.contains("budget_tokens"));
        assert!(html.contains("7 / 8"), "leaves covered card");
        assert!(html.contains("Labels: 4 headings that cover their topic, 6 phrases of the topic's text, 1 from keywords; 91% one phrase found in the topic's text, 9% repeating a parent's words, 0 alike sibling pairs."));
    }

    #[test]
    fn page_says_which_tokenizer_counted_the_tokens() {
        let mut inputs = sample_inputs();
        let html = render(&inputs);
        assert!(html.contains("No target tokenizer was named"), "the sample names none");
        if let Some(chunk) = inputs.manifest.as_mut().and_then(|m| m.stages.chunk.as_mut()) {
            chunk.summary.target_tokenizer =
                strata_core::summary::TargetTokenizer { file: "tokenizer.json".into(), sha256: "ab".repeat(32), is_target: true };
        }
        let html = render(&inputs);
        assert!(html.contains("target model&#39;s tokenizer (tokenizer.json, sha256 abababababab)"), "names the file");
    }

    #[test]
    fn page_needs_no_network() {
        let html = render(&sample_inputs());
        for bad in ["http://", "https://", "src=", "href=", "url(", "@import", "//cdn"] {
            assert!(!html.contains(bad), "found {bad}");
        }
    }

    #[test]
    fn text_is_escaped() {
        let mut inputs = sample_inputs();
        let evil = "<script>alert(\"x\")</script> & <b>";
        let mut nodes = inputs.taxonomy.clone().into_nodes();
        nodes[1].label = evil.into();
        nodes[2].keywords = vec![evil.into()];
        inputs.taxonomy = TaxonomyTree::new(nodes).expect("tree");
        inputs.ledger.rows[0].name = evil.into();
        inputs.ledger.rows[0].note = evil.into();
        inputs.ledger.literature[0].claim = evil.into();
        let medoid = inputs.taxonomy.node(2).medoid_chunk_id.clone().expect("medoid");
        if let Some(c) = inputs.chunks.iter_mut().find(|c| c.chunk_id == medoid) {
            c.text = evil.into();
        }
        if let Some(m) = inputs.manifest.as_mut() {
            m.config = json!({"domain": evil});
        }
        let html = render(&inputs);
        assert!(!html.contains("<script>alert") && !html.contains("&amp; <b>") && !html.contains("& <b>"));
        assert_eq!(html.matches("<script>").count(), 2, "only the page's own scripts");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;"));
    }

    #[test]
    fn page_is_deterministic_and_survives_empty_inputs() {
        assert_eq!(render(&sample_inputs()), render(&sample_inputs()));
        let mut empty = sample_inputs();
        empty.taxonomy = TaxonomyTree::new(vec![empty.taxonomy.root().clone()]).expect("a root alone");
        empty.chunks.clear();
        empty.ledger.rows.clear();
        empty.manifest = None;
        empty.eval = None;
        let html = render(&empty);
        assert!(html.contains("nothing to chart") && !html.contains("id=\"eval\""));
        assert!(html.contains("Domain corpus report: Medicine"), "without a manifest the root names the domain");
    }

    #[test]
    fn stage_renders_the_run_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        let inputs = sample_inputs();
        write_rows(&run.path(TAXONOMY), &TaxonomyNode::fields(false), inputs.taxonomy.nodes(), &[]).expect("taxonomy");
        write_rows(&run.path(CHUNKS), &PublishedChunk::fields(), &inputs.chunks, &[]).expect("chunks");
        std::fs::write(run.path(COST), serde_json::to_vec(&inputs.ledger).expect("json")).expect("cost");
        std::fs::write(run.path(EVAL), serde_json::to_vec(&inputs.eval).expect("json")).expect("eval");
        let mut manifest = inputs.manifest.clone().expect("manifest");
        manifest.save(&run.path(MANIFEST)).expect("manifest");

        run_stage(&run, &mut manifest, &ReportStage, &NoProgress, false).expect("report stage");
        let html = std::fs::read_to_string(run.path(REPORT)).expect("report.html");
        assert!(html.contains("<table class=\"coverage\">"));
        assert!(html.contains("Heart failure: passage 0."), "medoid text shown");
        assert!(!html.contains("Heart failure: passage 1."), "other chunk texts are not");
        assert_eq!(manifest.stages.report.as_ref().map(|r| (r.summary.leaves_covered, r.summary.leaves)), Some((7, 8)));
    }

    #[test]
    fn unreadable_inputs_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        let e = load(&run).expect_err("empty run");
        assert!(e.to_string().contains("taxonomy.parquet`"), "{e}");
        let inputs = sample_inputs();
        write_rows(&run.path(TAXONOMY), &TaxonomyNode::fields(false), inputs.taxonomy.nodes(), &[]).expect("taxonomy");
        write_rows(&run.path(CHUNKS), &PublishedChunk::fields(), &inputs.chunks, &[]).expect("chunks");
        std::fs::write(run.path(COST), "{not json").expect("cost");
        let e = load(&run).expect_err("bad cost.json");
        assert!(e.to_string().contains("cost.json`"), "{e}");
    }
}
