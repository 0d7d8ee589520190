//! Each passage's leaf of the tree it was placed in, as the taxonomy found it (or the shards
//! did), kept in a scratch file of the stage's (4 bytes a passage, on disk) and read back in
//! passage order by every pass that needs a passage's or a chunk's leaf: no stage over every
//! passage holds a leaf per passage or per chunk.

use crate::TaxonomyError;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use strata_core::StageContext;

/// Leaves read back from the file at a time.
const READ_LEAVES: usize = 1 << 14;

/// The passages' leaves (by position among the tree's leaves), in passage order.
pub(crate) struct PlacedLeaves {
    file: File,
    passages: u64,
}

/// [`PlacedLeaves`] as they are written, in passage order.
pub(crate) struct PlacedWriter {
    file: BufWriter<File>,
    passages: u64,
}

impl PlacedWriter {
    pub(crate) fn new(ctx: &StageContext) -> Result<Self, TaxonomyError> {
        Ok(Self { file: BufWriter::new(ctx.scratch_file().map_err(TaxonomyError::Scratch)?), passages: 0 })
    }

    pub(crate) fn push(&mut self, leaf: u32) -> Result<(), TaxonomyError> {
        self.passages += 1;
        self.file.write_all(&leaf.to_le_bytes()).map_err(TaxonomyError::Scratch)
    }

    pub(crate) fn finish(self) -> Result<PlacedLeaves, TaxonomyError> {
        let file = self.file.into_inner().map_err(|e| TaxonomyError::Scratch(e.into_error()))?;
        Ok(PlacedLeaves { file, passages: self.passages })
    }
}

impl PlacedLeaves {
    /// The leaves of `leaves` (held already: fewer passages than a fit sample), in a file.
    pub(crate) fn of(ctx: &StageContext, leaves: &[u32]) -> Result<Self, TaxonomyError> {
        let mut placed = PlacedWriter::new(ctx)?;
        leaves.iter().try_for_each(|&leaf| placed.push(leaf))?;
        placed.finish()
    }

    pub(crate) fn passages(&self) -> u64 {
        self.passages
    }

    /// Each passage's leaf, in passage order; reads can run side by side (each keeps its own
    /// place in the file).
    pub(crate) fn read(&self) -> impl Iterator<Item = Result<u32, TaxonomyError>> + '_ {
        let (mut buffer, mut at, mut next) = (Vec::new(), 0usize, 0u64);
        std::iter::from_fn(move || {
            if at == buffer.len() {
                let left = (self.passages - next).min(READ_LEAVES as u64) as usize;
                if left == 0 {
                    return None;
                }
                let mut bytes = vec![0u8; 4 * left];
                if let Err(e) = self.file.read_exact_at(&mut bytes, 4 * next) {
                    next = self.passages;
                    return Some(Err(TaxonomyError::Scratch(e)));
                }
                buffer = bytes.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
                (at, next) = (0, next + left as u64);
            }
            at += 1;
            Some(Ok(buffer[at - 1]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_come_back_in_order_and_two_reads_keep_their_own_place() {
        let test_run = crate::TestRun::new();
        let ctx = test_run.ctx();
        let leaves: Vec<u32> = (0..(READ_LEAVES as u32 * 2 + 5)).map(|p| p % 7).collect();
        let placed = PlacedLeaves::of(&ctx, &leaves).expect("write");
        assert_eq!(placed.passages(), leaves.len() as u64);
        let (mut first, mut second) = (placed.read(), placed.read());
        let mut read = Vec::new();
        for _ in 0..leaves.len() {
            read.push(first.next().expect("a leaf").expect("read"));
            assert_eq!(second.next().expect("a leaf").expect("read"), read[read.len() - 1]);
        }
        assert!(first.next().is_none() && second.next().is_none());
        assert_eq!(read, leaves);
    }
}
