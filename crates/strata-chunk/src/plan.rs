//! The shard plan: what every shard of a count needs to know about the corpus, computed once,
//! by whichever shard comes first, in one pass over the corpus: each file's hash, and for each
//! shard whose range starts inside a JSONL file, where its first line starts and that line's
//! number. The other shards wait on a lock, then read it. Without it every shard would hash
//! the whole corpus and count the lines before its range: N passes over the corpus, not one.
//! A shard trusts the plan while every file keeps the size and modification time planned.

use crate::ingest::{within, CorpusScan, FileKind, IngestError};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read};
use std::path::Path;
use strata_core::{RunDir, Shard};

/// The corpus as the shards of one count see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardPlan {
    pub count: u32,
    pub files: Vec<PlannedFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedFile {
    pub rel: String,
    pub bytes: u64,
    pub modified_ns: u64,
    pub sha256: String,
    /// JSONL only: where the shards whose range begins inside the file (after its first byte)
    /// start reading.
    pub line_starts: Vec<LineStart>,
}

/// The first line a shard reads in a JSONL file: the first that starts at or after its range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LineStart {
    pub shard: u32,
    pub offset: u64,
    /// Its number in the file, from 1.
    pub line: usize,
}

impl ShardPlan {
    /// The plan of `count` shards for the listed corpus `scan` (hashes not yet read), from the
    /// run directory `run` when one there still fits the corpus, else made and saved there. The
    /// scan takes the planned hashes.
    pub fn for_scan(scan: &mut CorpusScan, run: &RunDir, count: u32) -> Result<ShardPlan, IngestError> {
        let path = run.shard_plan(count);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| IngestError::Read { path, source }
        };
        let dir = path.parent().unwrap_or(run.root());
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // One shard plans; the others wait here, then find its plan.
        let lock_path = path.with_extension("lock");
        let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let plan = match Self::saved(run, count).filter(|p| p.fits(scan, count)) {
            Some(plan) => plan,
            None => {
                let plan = Self::make(scan, count)?;
                let json = serde_json::to_vec_pretty(&plan).map_err(|e| IngestError::Read { path: path.clone(), source: e.into() })?;
                strata_core::stage::write_atomically(&path, &json).map_err(io(&path))?;
                plan
            }
        };
        for (file, planned) in scan.files.iter_mut().zip(&plan.files) {
            file.sha256 = planned.sha256.clone();
        }
        Ok(plan)
    }

    /// The plan of `count` shards saved in `run`, if one is there (it may be of other files).
    pub fn saved(run: &RunDir, count: u32) -> Option<ShardPlan> {
        let bytes = std::fs::read(run.shard_plan(count)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Reads every file once: its hash and, in JSONL files, the shards' first lines.
    pub fn make(scan: &CorpusScan, count: u32) -> Result<ShardPlan, IngestError> {
        let total = scan.total_bytes();
        let ranges: Vec<_> = Shard::all(count).map(|s| s.range(total)).collect();
        let mut files = Vec::new();
        for (file, file_start) in scan.files_at() {
            // The shards whose range begins inside this file, after its first byte.
            let inside: Vec<(u32, u64)> = (0..count)
                .map(|s| (s, within(&ranges[s as usize], file_start, file.bytes).start))
                .filter(|&(_, start)| start > 0 && start < file.bytes)
                .collect();
            let read_err = |source| IngestError::Read { path: file.abs.clone(), source };
            let mut reader = std::io::BufReader::with_capacity(1 << 20, Hashing::new(std::fs::File::open(&file.abs).map_err(read_err)?));
            let mut line_starts = Vec::new();
            if file.kind == FileKind::Jsonl {
                let mut cursor = LineCursor::default();
                for (shard, start) in inside {
                    let (offset, line) = cursor.first_line_from(&mut reader, start).map_err(read_err)?;
                    line_starts.push(LineStart { shard, offset, line });
                }
            }
            std::io::copy(&mut reader, &mut std::io::sink()).map_err(read_err)?;
            let sha256 = reader.into_inner().finish();
            files.push(PlannedFile { rel: file.rel.clone(), bytes: file.bytes, modified_ns: file.modified_ns, sha256, line_starts });
        }
        Ok(ShardPlan { count, files })
    }

    /// Whether the plan is of `count` shards over exactly these files, unchanged.
    fn fits(&self, scan: &CorpusScan, count: u32) -> bool {
        self.count == count
            && self.files.len() == scan.files.len()
            && self.files.iter().zip(&scan.files).all(|(p, f)| p.rel == f.rel && p.bytes == f.bytes && p.modified_ns == f.modified_ns)
    }

    /// Where `shard` starts reading the JSONL file `rel`: offset and line number (the file's
    /// start when its range does not begin inside the file).
    pub fn line_start(&self, rel: &str, shard: Shard) -> (u64, usize) {
        let planned = self.files.iter().find(|f| f.rel == rel);
        planned.and_then(|f| f.line_starts.iter().find(|l| l.shard == shard.index)).map_or((0, 1), |l| (l.offset, l.line))
    }
}

/// A position in a file read from its start: the byte offset and the number of the line it is in.
struct LineCursor {
    offset: u64,
    line: usize,
    at_line_start: bool,
}

impl Default for LineCursor {
    fn default() -> Self {
        Self { offset: 0, line: 1, at_line_start: true }
    }
}

impl LineCursor {
    /// Moves to the first line that starts at or after `start` (at or after the cursor) and
    /// returns its offset and number; past the end, the end.
    fn first_line_from(&mut self, reader: &mut impl BufRead, start: u64) -> std::io::Result<(u64, usize)> {
        while self.offset < start {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                return Ok((self.offset, self.line));
            }
            let take = buf.len().min((start - self.offset) as usize);
            self.line += buf[..take].iter().filter(|&&b| b == b'\n').count();
            self.at_line_start = buf[take - 1] == b'\n';
            reader.consume(take);
            self.offset += take as u64;
        }
        if !self.at_line_start {
            // The line under way at `start` belongs to the shard before.
            let n = reader.read_until(b'\n', &mut Vec::new())?;
            self.offset += n as u64;
            self.line += 1;
            self.at_line_start = true;
        }
        Ok((self.offset, self.line))
    }
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: strata_core::hash::Sha256Stream,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Self { inner, hasher: strata_core::hash::Sha256Stream::default() }
    }

    fn finish(self) -> String {
        self.hasher.finish()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::list_corpus;

    #[test]
    fn a_saved_plan_serves_while_the_files_are_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let corpus = dir.path().join("docs.jsonl");
        std::fs::write(&corpus, "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"three\"}\n").expect("write");
        let run = RunDir::new(dir.path().join("out"));
        let mut scan = list_corpus(&corpus, true).expect("list");
        let plan = ShardPlan::for_scan(&mut scan, &run, 2).expect("plan");
        assert_eq!(scan.files[0].sha256, strata_core::hash::file_sha256(&corpus).expect("hash"));
        assert_eq!(plan.files[0].line_starts, [LineStart { shard: 1, offset: 32, line: 3 }]);

        // A saved plan is read, not made again, while sizes and times match ...
        let mut marked = plan.clone();
        marked.files[0].sha256 = "planned".into();
        std::fs::write(run.shard_plan(2), serde_json::to_vec(&marked).expect("json")).expect("write");
        let mut again = list_corpus(&corpus, true).expect("list");
        assert_eq!(ShardPlan::for_scan(&mut again, &run, 2).expect("plan"), marked);
        assert_eq!(again.files[0].sha256, "planned");

        // ... and made again once a file changes.
        std::fs::write(&corpus, "{\"text\": \"one\"}\n{\"text\": \"changed\"}\n").expect("write");
        let mut changed = list_corpus(&corpus, true).expect("list");
        let replanned = ShardPlan::for_scan(&mut changed, &run, 2).expect("plan");
        assert_eq!(changed.files[0].sha256, strata_core::hash::file_sha256(&corpus).expect("hash"));
        assert_ne!(replanned, marked);
    }
}
