//! The duplicates of a corpus too large to hold them. [`DuplicateRuns`]: sorted runs of
//! (row, target) pairs, each found one part at a time (a file of hashes, a group of leaves)
//! and, unless small, kept in a scratch file, read back merged in row order. [`IdLog`]: the ids
//! of the rows seen so far, appended to scratch files and read back by row, so that a
//! duplicate's target id (always an earlier row's) is found without holding every target's.

use crate::dedup::Duplicates;
use crate::TaxonomyError;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use strata_core::StageContext;

/// A run of at most this many pairs is held, not written out.
const HELD_PAIRS: usize = 1 << 12;
/// Pairs read back from a run's file at a time.
const READ_PAIRS: usize = 1 << 12;
/// Bytes an [`IdLog`] holds before writing them out.
const HELD_BYTES: usize = 1 << 20;

/// The rows that duplicate an earlier row, each with its target, as sorted runs.
#[derive(Default)]
pub(crate) struct DuplicateRuns {
    runs: Vec<Run>,
    count: usize,
}

enum Run {
    Held(Vec<(u64, u64)>),
    Spilled { file: File, pairs: u64 },
}

impl DuplicateRuns {
    /// `found`, pairs of rows none of which is already in, as one more run.
    pub(crate) fn add(&mut self, ctx: &StageContext, found: Vec<(usize, usize)>) -> Result<(), TaxonomyError> {
        let mut pairs: Vec<(u64, u64)> = found.into_iter().map(|(row, target)| (row as u64, target as u64)).collect();
        pairs.sort_unstable();
        self.count += pairs.len();
        if pairs.len() <= HELD_PAIRS {
            self.runs.push(Run::Held(pairs));
            return Ok(());
        }
        let file = ctx.scratch_file().map_err(TaxonomyError::Scratch)?;
        let bytes: Vec<u8> = pairs.iter().flat_map(|&(row, target)| row.to_le_bytes().into_iter().chain(target.to_le_bytes())).collect();
        file.write_all_at(&bytes, 0).map_err(TaxonomyError::Scratch)?;
        self.runs.push(Run::Spilled { file, pairs: pairs.len() as u64 });
        Ok(())
    }

    /// The duplicates found in memory (`Duplicates`), as runs.
    pub(crate) fn of(ctx: &StageContext, duplicates: Duplicates) -> Result<Self, TaxonomyError> {
        let mut runs = Self::default();
        runs.add(ctx, duplicates.into_pairs())?;
        Ok(runs)
    }

    /// How many rows are duplicates.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The pairs in row order, for rows asked in ascending order.
    pub(crate) fn cursor(&self) -> Result<Cursor<'_>, TaxonomyError> {
        let mut cursor = Cursor {
            readers: self.runs.iter().map(|run| Reader { run, next: 0, buffer: Vec::new(), at: 0 }).collect(),
            heads: BinaryHeap::new(),
        };
        (0..cursor.readers.len()).try_for_each(|i| cursor.refill(i))?;
        Ok(cursor)
    }
}

/// [`DuplicateRuns::cursor`].
pub(crate) struct Cursor<'a> {
    readers: Vec<Reader<'a>>,
    /// Each run's next pair, the lowest row first.
    heads: BinaryHeap<Reverse<(u64, u64, usize)>>,
}

struct Reader<'a> {
    run: &'a Run,
    /// The next pair of the run to read.
    next: u64,
    buffer: Vec<(u64, u64)>,
    at: usize,
}

impl Reader<'_> {
    fn next_pair(&mut self) -> std::io::Result<Option<(u64, u64)>> {
        match self.run {
            Run::Held(pairs) => {
                self.next += 1;
                Ok(pairs.get(self.next as usize - 1).copied())
            }
            Run::Spilled { file, pairs } => {
                if self.at == self.buffer.len() {
                    let n = (pairs - self.next).min(READ_PAIRS as u64) as usize;
                    if n == 0 {
                        return Ok(None);
                    }
                    let mut bytes = vec![0u8; 16 * n];
                    file.read_exact_at(&mut bytes, 16 * self.next)?;
                    let number = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
                    self.buffer = bytes.chunks_exact(16).map(|p| (number(&p[..8]), number(&p[8..]))).collect();
                    (self.at, self.next) = (0, self.next + n as u64);
                }
                self.at += 1;
                Ok(Some(self.buffer[self.at - 1]))
            }
        }
    }
}

impl Cursor<'_> {
    fn refill(&mut self, run: usize) -> Result<(), TaxonomyError> {
        if let Some((row, target)) = self.readers[run].next_pair().map_err(TaxonomyError::Scratch)? {
            self.heads.push(Reverse((row, target, run)));
        }
        Ok(())
    }

    /// The row `row` duplicates, if it is a duplicate; rows must be asked in ascending order.
    pub(crate) fn of(&mut self, row: usize) -> Result<Option<usize>, TaxonomyError> {
        while let Some(&Reverse((at, target, run))) = self.heads.peek() {
            if at > row as u64 {
                break;
            }
            self.heads.pop();
            self.refill(run)?;
            if at == row as u64 {
                return Ok(Some(target as usize));
            }
        }
        Ok(None)
    }
}

/// Bytes appended to a scratch file, the last ones held, read back from anywhere.
struct AppendFile {
    file: File,
    written: u64,
    held: Vec<u8>,
}

impl AppendFile {
    fn new(ctx: &StageContext) -> Result<Self, TaxonomyError> {
        Ok(Self { file: ctx.scratch_file().map_err(TaxonomyError::Scratch)?, written: 0, held: Vec::new() })
    }

    fn len(&self) -> u64 {
        self.written + self.held.len() as u64
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), TaxonomyError> {
        self.held.extend_from_slice(bytes);
        if self.held.len() >= HELD_BYTES {
            self.file.write_all_at(&self.held, self.written).map_err(TaxonomyError::Scratch)?;
            self.written += self.held.len() as u64;
            self.held.clear();
        }
        Ok(())
    }

    fn read(&self, at: u64, len: usize) -> Result<Vec<u8>, TaxonomyError> {
        let mut out = vec![0u8; len];
        let on_disk = (self.written.saturating_sub(at) as usize).min(len);
        self.file.read_exact_at(&mut out[..on_disk], at).map_err(TaxonomyError::Scratch)?;
        if on_disk < len {
            // The rest is held: it starts at `written` or later.
            let from = (at + on_disk as u64 - self.written) as usize;
            out[on_disk..].copy_from_slice(&self.held[from..from + len - on_disk]);
        }
        Ok(out)
    }
}

/// The ids of the rows seen so far, in row order.
pub(crate) struct IdLog {
    bytes: AppendFile,
    /// Each row's first byte in `bytes`, 8 bytes a row.
    starts: AppendFile,
}

impl IdLog {
    pub(crate) fn new(ctx: &StageContext) -> Result<Self, TaxonomyError> {
        Ok(Self { bytes: AppendFile::new(ctx)?, starts: AppendFile::new(ctx)? })
    }

    /// The next row's id.
    pub(crate) fn push(&mut self, id: &str) -> Result<(), TaxonomyError> {
        self.starts.append(&self.bytes.len().to_le_bytes())?;
        self.bytes.append(id.as_bytes())
    }

    /// The id of row `row`, one of the rows seen.
    pub(crate) fn get(&self, row: usize) -> Result<String, TaxonomyError> {
        let start = |row: u64| -> Result<u64, TaxonomyError> {
            match 8 * row < self.starts.len() {
                true => Ok(u64::from_le_bytes(self.starts.read(8 * row, 8)?.try_into().expect("8 bytes"))),
                false => Ok(self.bytes.len()),
            }
        };
        let (from, to) = (start(row as u64)?, start(row as u64 + 1)?);
        let bytes = self.bytes.read(from, (to - from) as usize)?;
        String::from_utf8(bytes).map_err(|e| TaxonomyError::Scratch(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_read_back_merged_in_row_order_and_ids_by_row() {
        let test_run = crate::TestRun::new();
        let ctx = test_run.ctx();
        // Three runs: two written out (more than HELD_PAIRS pairs), one held; rows interleaved.
        let mut runs = DuplicateRuns::default();
        let run_of = |k: usize, n: usize| (0..n).rev().map(|i| (3 * i + k + 1, i)).collect::<Vec<_>>();
        runs.add(&ctx, run_of(0, HELD_PAIRS + 5)).expect("run");
        runs.add(&ctx, run_of(1, 10)).expect("run");
        runs.add(&ctx, run_of(2, 2 * HELD_PAIRS)).expect("run");
        assert_eq!(runs.count(), 3 * HELD_PAIRS + 15);
        let mut cursor = runs.cursor().expect("cursor");
        let found: Vec<(usize, usize)> = (0..7 * HELD_PAIRS).filter_map(|row| cursor.of(row).expect("read").map(|t| (row, t))).collect();
        let mut expected: Vec<(usize, usize)> = [run_of(0, HELD_PAIRS + 5), run_of(1, 10), run_of(2, 2 * HELD_PAIRS)].concat();
        expected.sort_unstable();
        assert_eq!(found, expected);

        let mut ids = IdLog::new(&ctx).expect("log");
        let id = |row: usize| format!("document-{row}#c{}", row % 7);
        for row in 0..100_000 {
            ids.push(&id(row)).expect("push");
            if row % 997 == 0 {
                assert_eq!(ids.get(row).expect("get"), id(row));
                assert_eq!(ids.get(row / 2).expect("get"), id(row / 2));
            }
        }
        assert_eq!(ids.get(0).expect("get"), id(0));
    }
}
