//! The labels measured from the files, as a reader would check them: whether each label is
//! one phrase found verbatim in its node's chunk texts or headings, whether it repeats its
//! ancestors, and whether siblings are alike (the rules of `strata_core::labels`).

use crate::{EvalError, RunData};
use strata_core::labels::{normalise, LabelQuality};
use strata_core::parquet_io::batches;
use strata_core::rundir::CHUNKS;
use strata_core::RunDir;

#[derive(serde::Deserialize)]
struct ChunkWords {
    text: String,
    heading_path: Vec<String>,
}

/// The run's label figures. A label is looked for (case and spacing aside) in the texts and
/// headings of the chunks under its node, read a batch at a time; a made-up label ("Heparin,
/// anticoagulants", "Group 3") is not found.
pub fn label_quality(run: &RunDir, data: &RunData) -> Result<LabelQuality, EvalError> {
    let tree = &data.tree;
    let wanted: Vec<String> = tree.nodes().iter().map(|n| normalise(&n.label)).collect();
    let mut found = vec![false; wanted.len()];
    let mut row = 0;
    for batch in batches::<ChunkWords>(&run.path(CHUNKS), &["text", "heading_path"])? {
        for chunk in batch? {
            let leaf = data.chunks[row].node_id;
            row += 1;
            let open: Vec<u32> = tree.shape().lineage(leaf).into_iter().filter(|&id| !found[id as usize]).collect();
            if open.is_empty() {
                continue;
            }
            let text = normalise(&format!("{}\n{}", chunk.heading_path.join("\n"), chunk.text));
            for id in open {
                found[id as usize] |= text.contains(&wanted[id as usize]);
            }
        }
    }
    Ok(LabelQuality::measure(tree, |id| found[id as usize]))
}
