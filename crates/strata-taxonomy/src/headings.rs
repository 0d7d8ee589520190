//! The chunks' headings as the taxonomy uses them: each chunk's first and last heading, read
//! from `work/chunks.parquet` in passes (nothing is held per chunk), as ids of the headings
//! seen, the generic ones left out (headings of many documents name an aspect such as
//! Symptoms, not a topic).

use crate::labels::Vocabulary;
use crate::TaxonomyError;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use strata_core::parquet_io::{self, ParquetIoError};
use strata_core::passages::per_chunk;
use strata_core::PassagesFile;

pub(crate) struct Headings {
    pub chunks: PathBuf,
    pub names: Vocabulary,
    /// The generic headings' ids, left out of every pass.
    generic: HashSet<u32>,
    /// The generic headings by name: never a label, and no phrase is counted from them.
    pub generic_names: HashSet<String>,
}

#[derive(serde::Deserialize)]
struct ChunkHeadings {
    heading_path: Vec<String>,
}

impl Headings {
    /// The headings of the chunks in `chunks` (of the run's `passages`), with those found in
    /// more than `share` of the documents (and in at least 3) generic. One pass.
    pub fn read(chunks: &Path, passages: &PassagesFile, share: f64) -> Result<Self, TaxonomyError> {
        let mut names = Vocabulary::default();
        // Each chunk's document, its passage's.
        let mut document_of = per_chunk(passages.rows()?.map(|r| r.map(|r| (r.document, r.n_chunks))));
        let mut n_documents = 0;
        // Per heading, the last document it was seen in and its documents so far: the chunks
        // come in document order, so a heading's documents are counted without a set of them.
        let mut documents: HashMap<u32, (usize, usize)> = HashMap::new();
        each_first_and_last(chunks, |first, last| {
            // A heading seen before is looked up, not copied: most chunks repeat their document's.
            let mut id = |h: &str| names.id(h).unwrap_or_else(|| names.intern(h.to_string()));
            let first = first.map(&mut id);
            let ids = HeadingIds::new(first, last.map(&mut id));
            let document = document_of.next().ok_or(ParquetIoError::OutOfStep { path: passages.path().to_path_buf() })??;
            n_documents = document + 1;
            for h in ids.distinct() {
                let (seen_in, count) = documents.entry(h).or_insert((usize::MAX, 0));
                if *seen_in != document {
                    (*seen_in, *count) = (document, *count + 1);
                }
            }
            Ok(())
        })?;
        let limit = (share * n_documents as f64).max(3.0);
        let generic: HashSet<u32> = documents.into_iter().filter(|&(_, (_, d))| d as f64 > limit).map(|(h, _)| h).collect();
        let generic_names = generic.iter().map(|&h| names.name(h).to_string()).collect();
        Ok(Self { chunks: chunks.to_path_buf(), names, generic, generic_names })
    }

    /// Each chunk's first and last heading that are not generic, in row order: one more pass.
    pub fn each(&self, mut f: impl FnMut(HeadingIds) -> Result<(), TaxonomyError>) -> Result<(), TaxonomyError> {
        let id = |h: Option<&str>| -> Result<Option<u32>, TaxonomyError> {
            let Some(h) = h else { return Ok(None) };
            let id = self.names.id(h).ok_or_else(|| TaxonomyError::Changed { path: self.chunks.clone() })?;
            Ok(Some(id).filter(|id| !self.generic.contains(id)))
        };
        each_first_and_last(&self.chunks, |first, last| f(HeadingIds::new(id(first)?, id(last)?)))
    }
}

/// Each chunk's first and last heading of its path, in row order, read a batch at a time.
fn each_first_and_last(
    chunks: &Path,
    mut f: impl FnMut(Option<&str>, Option<&str>) -> Result<(), TaxonomyError>,
) -> Result<(), TaxonomyError> {
    for batch in parquet_io::batches::<ChunkHeadings>(chunks, &["heading_path"])? {
        for c in batch? {
            f(c.heading_path.first().map(String::as_str), c.heading_path.last().map(String::as_str))?;
        }
    }
    Ok(())
}

/// A chunk's first and last heading, as ids of `Headings::names` (`NO_HEADING`: none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadingIds([u32; 2]);

const NO_HEADING: u32 = u32::MAX;

impl HeadingIds {
    fn new(first: Option<u32>, last: Option<u32>) -> Self {
        Self([first.unwrap_or(NO_HEADING), last.unwrap_or(NO_HEADING)])
    }

    /// The first heading, then the last when it is another.
    pub fn distinct(self) -> impl Iterator<Item = u32> {
        let [first, last] = self.0;
        std::iter::once(first).chain((last != first).then_some(last)).filter(|&h| h != NO_HEADING)
    }
}
