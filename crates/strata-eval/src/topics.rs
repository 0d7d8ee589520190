//! Whether the tree is organised by topic: a document's chunks stay under one level-1 node,
//! and level 1 agrees less with the section headings (Symptoms, Treatment: aspects that recur
//! in every document) than with the document's own labels.

use crate::{agreement, Agreement, EvalError, RunData};
use polars::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use strata_core::parquet_io::batches;
use strata_core::rundir::{RunDir, CHUNKS};

/// The topic-first figures of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicFirst {
    /// Documents with more than one chunk, and the share of them whose chunks all sit under
    /// one level-1 node.
    pub multi_chunk_documents: usize,
    pub documents_whole_at_level1: f64,
    /// Level 1 against the chunk's section heading (the last of its heading path, for chunks
    /// under at least two headings: a title and a section).
    pub level1_vs_section: Agreement,
}

#[derive(serde::Deserialize)]
struct Headings {
    heading_path: Vec<String>,
}

/// Measures `data` (the run's chunks, in `chunks.parquet` order).
pub fn topic_first(run: &RunDir, data: &RunData) -> Result<TopicFirst, EvalError> {
    let level1 = data.clusters_at(1);
    let mut sections: Vec<Option<String>> = Vec::with_capacity(data.chunks.len());
    for batch in batches::<Headings>(&run.path(CHUNKS), &["heading_path"])? {
        sections.extend(batch?.into_iter().map(|h| if h.heading_path.len() >= 2 { h.heading_path.last().cloned() } else { None }));
    }
    let frame = df!("cluster" => &level1, "section" => &sections)?;
    let level1_vs_section = Agreement { depth: 1, ..agreement(frame.lazy(), "cluster", "section")? };

    let mut nodes: HashMap<&str, (usize, Option<u32>, bool)> = HashMap::new();
    for (c, &node) in data.chunks.iter().zip(&level1) {
        let entry = nodes.entry(c.doc_id.as_str()).or_insert((0, Some(node), true));
        entry.0 += 1;
        entry.2 &= entry.1 == Some(node);
    }
    let multi: Vec<bool> = nodes.values().filter(|(n, _, _)| *n > 1).map(|(_, _, whole)| *whole).collect();
    let whole = multi.iter().filter(|&&w| w).count() as f64 / multi.len().max(1) as f64;
    Ok(TopicFirst { multi_chunk_documents: multi.len(), documents_whole_at_level1: whole, level1_vs_section })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::parquet_io::write_rows;
    use strata_core::records::PublishedChunk;

    #[test]
    fn split_documents_and_section_agreement_are_counted() {
        // Leaves 2 and 3 sit under level-1 node 1; leaf 4 is its own level-1 node.
        let data = crate::data::tests::toy(&[("a", 2, 40), ("a", 3, 40), ("b", 2, 40), ("b", 4, 40), ("c", 4, 40)], &[[1.0, 0.0]; 5]);
        let dir = tempfile::tempdir().expect("dir");
        let run = RunDir::new(dir.path());
        let headings = [vec!["A", "Symptoms"], vec!["A", "Treatment"], vec!["B", "Symptoms"], vec!["B", "Treatment"], vec!["C"]];
        let rows: Vec<PublishedChunk> = data
            .chunks
            .iter()
            .zip(&headings)
            .map(|(c, h)| PublishedChunk {
                chunk_id: c.chunk_id.clone(),
                doc_id: c.doc_id.clone(),
                source: String::new(),
                ordinal: 0,
                heading_path: h.iter().map(|s| s.to_string()).collect(),
                text: String::new(),
                n_tokens: c.n_tokens,
                byte_start: 0,
                byte_end: 0,
                node_id: c.node_id,
                taxonomy_path: Vec::new(),
                duplicate_of: None,
                selected: false,
                passage_id: c.chunk_id.clone(),
            })
            .collect();
        write_rows(&run.path(CHUNKS), &PublishedChunk::fields(), &rows, &[]).expect("chunks");
        let t = topic_first(&run, &data).expect("measure");
        // a stays under node 1, b is split between 1 and 4; c has one chunk.
        assert_eq!(t.multi_chunk_documents, 2);
        assert!((t.documents_whole_at_level1 - 0.5).abs() < 1e-12);
        // Four chunks have a section; level 1 is [1, 1, 1, 4] against [S, T, S, T].
        assert_eq!((t.level1_vs_section.chunks, t.level1_vs_section.clusters, t.level1_vs_section.labels), (4, 2, 2));
    }
}
