//! The chunk stage of a sharded run: the shards' files joined in shard order. Shards hold
//! consecutive documents of the corpus in scan order, so the joined files are, byte for byte,
//! those one [`ChunkStage`](crate::ChunkStage) over the whole corpus writes.

use crate::IngestError;
use std::collections::HashMap;
use std::path::PathBuf;
use strata_core::parquet_io::{for_each_row, RowWriter};
use strata_core::records::{ChunkRecord, DocumentRecord, PassageRecord};
use strata_core::rundir::{WORK_CHUNKS, WORK_DOCUMENTS, WORK_PASSAGES};
use strata_core::shard::Parts;
use strata_core::summary::ChunkSummary;
use strata_core::{Stage, StageContext, StageError, StageName, StageStats, StageSummary};

/// Joins the chunk stage's files of every shard.
pub struct MergeChunks {
    pub parts: Parts,
    /// The corpus (for the error when it holds no text) and its number of files.
    pub corpus: PathBuf,
    pub files: u64,
}

impl Stage for MergeChunks {
    fn name(&self) -> StageName {
        StageName::Chunk
    }

    fn reads(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn writes(&self) -> Vec<&'static str> {
        crate::WRITES.to_vec()
    }

    fn fingerprint(&self) -> Result<serde_json::Value, StageError> {
        self.parts.fingerprint(StageName::Chunk)
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let mut chunks = RowWriter::<ChunkRecord>::create(&ctx.output(WORK_CHUNKS)?, &ChunkRecord::fields(), &[])?;
        let mut passages = RowWriter::<PassageRecord>::create(&ctx.output(WORK_PASSAGES)?, &PassageRecord::fields(), &[])?;
        let mut documents = RowWriter::<DocumentRecord>::create(&ctx.output(WORK_DOCUMENTS)?, &DocumentRecord::fields(), &[])?;
        // Each shard checked its own ids; ids must be unique across shards too.
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut total = ChunkSummary { files: self.files, ..Default::default() };
        ctx.progress.start("merge chunk shards", Some(self.parts.dirs.len() as u64));
        for (dir, (_, summary)) in self.parts.dirs.iter().zip(self.parts.records(StageName::Chunk)?) {
            let StageSummary::Chunk(part) = summary else { return Err("a chunk record holds another stage's summary".into()) };
            add(&mut total, part);
            for_each_row(&dir.path(WORK_DOCUMENTS), |doc: DocumentRecord| -> Result<(), StageError> {
                if let Some(first) = seen.insert(doc.doc_id.clone(), doc.source.clone()) {
                    return Err(IngestError::DuplicateId { id: doc.doc_id, first, second: doc.source }.into());
                }
                Ok(documents.push(doc)?)
            })?;
            // A passage names its first chunk by row, which the shards before move down.
            let offset = chunks.rows();
            for_each_row(&dir.path(WORK_PASSAGES), |p: PassageRecord| {
                passages.push(PassageRecord { first_chunk: p.first_chunk + offset, ..p })
            })?;
            for_each_row(&dir.path(WORK_CHUNKS), |chunk| chunks.push(chunk))?;
            ctx.progress.advance(1);
        }
        ctx.progress.finish();
        if chunks.rows() == 0 {
            return Err(IngestError::NoText { corpus: self.corpus.clone() }.into());
        }
        let (rows_in, rows_out) = (documents.rows(), chunks.rows());
        chunks.close()?;
        passages.close()?;
        documents.close()?;
        Ok(StageStats { rows_in, rows_out, summary: StageSummary::Chunk(total) })
    }
}

/// Adds a shard's totals to the run's (the file count is the corpus's, set once).
fn add(total: &mut ChunkSummary, part: ChunkSummary) {
    total.documents += part.documents;
    total.documents_without_chunks += part.documents_without_chunks;
    total.embedding_tokens += part.embedding_tokens;
    total.corpus_tokens += part.corpus_tokens;
    total.chunks_under_min_tokens += part.chunks_under_min_tokens;
    total.passages += part.passages;
    total.target_tokenizer = part.target_tokenizer;
}
