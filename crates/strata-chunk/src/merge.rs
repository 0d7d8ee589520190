//! The chunk stage of a sharded run: the shards' files joined in shard order. Shards hold
//! consecutive documents of the corpus in scan order, so the joined files are, byte for byte,
//! those one [`ChunkStage`](crate::ChunkStage) over the whole corpus writes.

use crate::IngestError;
use arrow::array::{Array, AsArray, UInt64Array};
use arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_core::parquet_io::{record_batches, BatchWriter};
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
        // Record batches pass through undecoded; only the columns the merge reads are looked at.
        let mut chunks = BatchWriter::create(&ctx.output(WORK_CHUNKS)?, &ChunkRecord::fields(), &[])?;
        let mut passages = BatchWriter::create(&ctx.output(WORK_PASSAGES)?, &PassageRecord::fields(), &[])?;
        let mut documents = BatchWriter::create(&ctx.output(WORK_DOCUMENTS)?, &DocumentRecord::fields(), &[])?;
        // Each shard checked its own ids; ids must be unique across shards too.
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut total = ChunkSummary { files: self.files, ..Default::default() };
        ctx.progress.start("merge chunk shards", Some(self.parts.dirs.len() as u64));
        for (index, (dir, (_, summary))) in self.parts.dirs.iter().zip(self.parts.records(StageName::Chunk)?).enumerate() {
            let StageSummary::Chunk(part) = summary else { return Err("a chunk record holds another stage's summary".into()) };
            self.parts.verify(index, StageName::Chunk)?;
            add(&mut total, part);
            let path = dir.path(WORK_DOCUMENTS);
            for batch in record_batches(&path)? {
                let batch = batch?;
                let [ids, sources] = ["doc_id", "source"].map(|name| string_column(&batch, name, &path));
                let (ids, sources) = (ids?, sources?);
                for (id, source) in ids.iter().zip(sources.iter()) {
                    let (id, source) = (id.unwrap_or_default(), source.unwrap_or_default());
                    if let Some(first) = seen.insert(id.to_string(), source.to_string()) {
                        return Err(IngestError::DuplicateId { id: id.to_string(), first, second: source.to_string() }.into());
                    }
                }
                documents.push(batch)?;
            }
            // A passage names its first chunk by row, which the shards before move down.
            let offset = chunks.rows();
            let path = dir.path(WORK_PASSAGES);
            for batch in record_batches(&path)? {
                passages.push(shift_first_chunk(batch?, offset, &path)?)?;
            }
            for batch in record_batches(&dir.path(WORK_CHUNKS))? {
                chunks.push(batch?)?;
            }
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

fn column<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a Arc<dyn Array>, StageError> {
    batch.column_by_name(name).ok_or_else(|| format!("`{}` has no column `{name}`; rerun the shard's chunk stage", path.display()).into())
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a arrow::array::StringArray, StageError> {
    column(batch, name, path)?
        .as_string_opt::<i32>()
        .ok_or_else(|| format!("`{}`: column `{name}` is not text; rerun the shard's chunk stage", path.display()).into())
}

/// The passages with `first_chunk` moved down by `offset` rows.
fn shift_first_chunk(batch: RecordBatch, offset: u64, path: &Path) -> Result<RecordBatch, StageError> {
    let first: &UInt64Array = column(&batch, "first_chunk", path)?
        .as_primitive_opt()
        .ok_or_else(|| format!("`{}`: column `first_chunk` is not a row number; rerun the shard's chunk stage", path.display()))?;
    let shifted: UInt64Array = first.unary(|row| row + offset);
    let index = batch.schema().index_of("first_chunk")?;
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(shifted);
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
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
