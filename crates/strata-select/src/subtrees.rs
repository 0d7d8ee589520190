//! The subset of a corpus of more than `subtree_above` passages, chosen per level-1 subtree
//! of the taxonomy, one subtree after another, each with the budget times its share of the
//! passages' tokens: the stage holds one subtree's passage vectors, never all. One pass over
//! the chunks' vectors writes each passage's vector to its subtree's scratch file; each
//! subtree's file is then read back whole and its passages selected as a whole corpus's are.

use crate::facility::{select, Budget, Candidate};
use crate::{Passages, SelectConfig};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Read, Seek, Write};
use std::path::Path;
use strata_core::parquet_io;
use strata_core::records::TaxonomyNode;
use strata_core::rundir::{EMBEDDINGS, TAXONOMY, WORK_CHUNKS};
use strata_core::{Matrix, StageContext, StageError, TaxonomyTree};

/// Per passage, whether it is selected; and the number of subtrees.
pub fn select_by_subtree(
    ctx: &StageContext,
    units: &Passages,
    budget: Budget,
    floor: u32,
    config: &SelectConfig,
    seed: u64,
) -> Result<(Vec<bool>, u64), StageError> {
    let level1 = level1_of(&ctx.run.path(TAXONOMY))?;
    let subtree_of = |p: usize| level1.get(&units.leaf[p]).copied().unwrap_or(units.leaf[p]);
    let mut members: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    (0..units.passages.len()).for_each(|p| members.entry(subtree_of(p)).or_default().push(p));
    let mut files: HashMap<u32, BufWriter<std::fs::File>> = HashMap::new();
    for &subtree in members.keys() {
        files.insert(subtree, BufWriter::new(ctx.scratch_file()?));
    }
    let mut dim = 0;
    units.passages.for_each_vector(&ctx.run.path(WORK_CHUNKS), &ctx.run.path(EMBEDDINGS), |p, v| -> Result<(), StageError> {
        dim = v.len();
        let file = files.get_mut(&subtree_of(p)).ok_or("a passage of no subtree")?;
        v.iter().try_for_each(|x| file.write_all(&x.to_le_bytes()))?;
        Ok(())
    })?;

    let total: u64 = units.passages.n_tokens.iter().map(|&n| n as u64).sum();
    let mut chosen = vec![false; units.passages.len()];
    let subtrees = members.len() as u64;
    for (subtree, passages) in members {
        let file = files.remove(&subtree).ok_or("a subtree without its file")?;
        let vectors = read_back(file, dim)?;
        let candidates: Vec<Candidate> = passages.iter().enumerate().map(|(i, &p)| units.candidate(p, vectors.row(i))).collect();
        let tokens: u64 = passages.iter().map(|&p| units.passages.n_tokens[p] as u64).sum();
        let share = Budget { tokens: (budget.tokens as u128 * tokens as u128 / total.max(1) as u128) as u64 };
        let picked = select(&candidates, share, floor, config.max_clients, config.max_similarity, seed);
        passages.iter().zip(picked).for_each(|(&p, taken)| chosen[p] = taken);
    }
    Ok((chosen, subtrees))
}

/// The vectors a subtree's scratch file holds, in its passages' order.
fn read_back(file: BufWriter<std::fs::File>, dim: usize) -> Result<Matrix, StageError> {
    let mut file = file.into_inner().map_err(|e| e.into_error())?;
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
    Ok(Matrix::new(values, dim))
}

/// Per leaf, its ancestor at level 1 (itself at level 1; the root for a tree of one node).
fn level1_of(taxonomy: &Path) -> Result<HashMap<u32, u32>, StageError> {
    let tree = TaxonomyTree::new(parquet_io::read_rows::<TaxonomyNode>(taxonomy)?)?;
    Ok(tree.leaves().map(|leaf| (leaf, *tree.shape().lineage(leaf).get(1).unwrap_or(&leaf))).collect())
}
