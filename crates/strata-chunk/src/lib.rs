//! strata-chunk: ingest and chunking, the first stage.
//!
//! It owns reading a corpus (a folder or file of `.txt`/`.md`/`.markdown`, JSONL or Parquet
//! with a `text` column), Unicode normalisation, splitting documents into sections by their
//! Markdown headings, sections into chunks sized in the embedding model's tokens, and chunks
//! into passages (the training unit) sized in the target model's tokens.
//! It writes `work/chunks.parquet`, `work/passages.parquet` and `work/documents.parquet`, for
//! the whole corpus or for one shard of it (then [`MergeChunks`] joins the shards' files); it
//! knows nothing of embeddings or the taxonomy.

mod ingest;
mod merge;
mod passages;
mod plan;
mod sections;
mod split;

pub use ingest::{list_corpus, scan_corpus, CorpusFile, CorpusScan, Document, FileKind, IngestError, Skipped};
pub use merge::MergeChunks;
pub use passages::{group_passages, ChunkCounts, DocPassage};
pub use plan::{LineStart, PlannedFile, ShardPlan};
pub use sections::{sections, Section};
pub use split::{chunk_document, DocChunk};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::PathBuf;
use strata_core::parquet_io::RowWriter;
use strata_core::records::{ChunkRecord, DocumentRecord, PassageRecord};
use strata_core::rundir::{WORK_CHUNKS, WORK_DOCUMENTS, WORK_PASSAGES};
use strata_core::summary::{ChunkSummary, TargetTokenizer};
use strata_core::tokens::TokenCounter;
use strata_core::{Shard, Stage, StageContext, StageError, StageName, StageStats, StageSummary};

/// How documents are cut into chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkConfig {
    /// Largest model input per chunk, in tokens, counting the model's two special tokens
    /// ([CLS], [SEP]); all-MiniLM-L6-v2 reads at most 256.
    pub max_tokens: usize,
    /// A chunk under this many tokens is merged with a neighbour in its section when the
    /// maximum allows.
    pub min_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self { max_tokens: 256, min_tokens: 32 }
    }
}

impl ChunkConfig {
    /// Tokens of text a chunk may hold: the maximum less the special tokens.
    pub fn text_capacity(&self) -> usize {
        self.max_tokens.saturating_sub(2).max(1)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens < 16 {
            return Err(format!("chunk.max_tokens = {} is too small (at least 16)", self.max_tokens));
        }
        if self.min_tokens >= self.text_capacity() {
            return Err(format!("chunk.min_tokens = {} must be below chunk.max_tokens - 2 = {}", self.min_tokens, self.text_capacity()));
        }
        Ok(())
    }
}

/// The model being trained: its tokenizer (recipe `[target]`) and the passage size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    /// A Hugging Face `tokenizer.json` of the trained model; none: the embedding model's.
    pub tokenizer: Option<PathBuf>,
    /// Most target tokens per passage (StructTuning trains on 1,024-3,072).
    pub passage_tokens: usize,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self { tokenizer: None, passage_tokens: 1024 }
    }
}

impl TargetConfig {
    pub fn validate(&self, chunk: &ChunkConfig) -> Result<(), String> {
        if self.passage_tokens < chunk.max_tokens {
            return Err(format!(
                "target.passage_tokens = {} must be at least chunk.max_tokens = {}",
                self.passage_tokens, chunk.max_tokens
            ));
        }
        Ok(())
    }
}

/// The chunking stage over a scanned corpus.
pub struct ChunkStage {
    pub scan: CorpusScan,
    /// The embedding model's tokenizer, which sizes chunks.
    pub tokenizer_path: PathBuf,
    pub tokenizer_sha256: String,
    pub config: ChunkConfig,
    /// The target tokenizer (the embedding model's when the recipe names none), which sizes
    /// passages, and the passage size.
    pub target_path: PathBuf,
    pub target: TargetTokenizer,
    pub passage_tokens: usize,
    /// Only this shard's documents (written into the shard's own run directory), read as the
    /// plan of its count says; none: all.
    pub shard: Option<(Shard, ShardPlan)>,
}

/// The stage's files, written alike by [`ChunkStage`] and by [`MergeChunks`] from shards.
const WRITES: [&str; 3] = [WORK_CHUNKS, WORK_PASSAGES, WORK_DOCUMENTS];

impl Stage for ChunkStage {
    fn name(&self) -> StageName {
        StageName::Chunk
    }

    fn reads(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn writes(&self) -> Vec<&'static str> {
        WRITES.to_vec()
    }

    fn fingerprint(&self) -> Result<serde_json::Value, StageError> {
        let files: Vec<_> = self.scan.files.iter().map(|f| json!([f.rel, f.sha256])).collect();
        let mut fingerprint = json!({
            "config": self.config,
            "tokenizer": self.tokenizer_sha256,
            "target": [self.target.sha256, self.passage_tokens],
            "files": files,
        });
        if let Some((shard, _)) = &self.shard {
            fingerprint["shard"] = json!(shard);
        }
        Ok(fingerprint)
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate()?;
        let chunk = TokenCounter::from_file(&self.tokenizer_path)?;
        let (target, chunk_counts) = if self.target.sha256 == self.tokenizer_sha256 {
            (chunk.clone(), ChunkCounts::Target)
        } else {
            (TokenCounter::from_file(&self.target_path)?, ChunkCounts::Other)
        };
        let counters = Counters { chunk, target, chunk_counts };
        let mut out = ChunkWriter::create(ctx, &self.config)?;
        ctx.progress.start("chunk", None);
        // Three steps overlap, so memory holds a few blocks of documents, never the corpus:
        // this thread reads documents and sends them a block at a time; the other chunks each
        // block (in parallel within it) while it writes the one before.
        let (blocks, received) = std::sync::mpsc::sync_channel::<Vec<Document>>(1);
        std::thread::scope(|scope| {
            let chunker = scope.spawn(|| -> Result<(), StageError> {
                let mut pending: Option<(Vec<Document>, Vec<Chunked>)> = None;
                for block in received {
                    let chunked = match pending.take() {
                        None => chunk_block(&block, &counters, &self.config, self.passage_tokens, ctx)?,
                        Some((previous, done)) => {
                            let (chunked, written) = rayon::join(
                                || chunk_block(&block, &counters, &self.config, self.passage_tokens, ctx),
                                || out.write_block(&previous, done),
                            );
                            written?;
                            chunked?
                        }
                    };
                    pending = Some((block, chunked));
                }
                match pending {
                    Some((block, chunked)) => out.write_block(&block, chunked),
                    None => Ok(()),
                }
            });
            let mut block: Vec<Document> = Vec::new();
            let mut block_bytes = 0;
            let read = self.scan.for_each_document(self.shard.as_ref().map(|(s, plan)| (*s, plan)), |doc| -> Result<(), StageError> {
                block_bytes += doc.text.len();
                block.push(doc);
                if block_bytes >= BLOCK_BYTES {
                    block_bytes = 0;
                    // A closed channel means the chunker failed: its error is the one to report.
                    blocks.send(std::mem::take(&mut block)).map_err(|_| StageError::from("chunking stopped"))?;
                }
                Ok(())
            });
            if read.is_ok() && !block.is_empty() {
                let _ = blocks.send(block);
            }
            drop(blocks);
            let chunked = chunker.join().map_err(|_| StageError::from("the chunking thread panicked"))?;
            chunked.and(read)
        })?;
        ctx.progress.finish();
        // A shard may hold no text (the merge checks the whole corpus).
        if out.chunks.rows() == 0 && self.shard.is_none() {
            return Err(IngestError::NoText { corpus: self.scan.root.clone() }.into());
        }
        let (documents, chunks) = (out.documents.rows(), out.chunks.rows());
        let summary = ChunkSummary {
            files: self.scan.files.len() as u64,
            documents,
            documents_without_chunks: out.documents_without_chunks,
            embedding_tokens: out.tokens,
            corpus_tokens: out.target_tokens,
            chunks_under_min_tokens: out.small_chunks,
            passages: out.passages.rows(),
            target_tokenizer: self.target.clone(),
        };
        out.chunks.close()?;
        out.passages.close()?;
        out.documents.close()?;
        Ok(StageStats { rows_in: documents, rows_out: chunks, summary: StageSummary::Chunk(summary) })
    }
}

/// Text per block of documents chunked together.
const BLOCK_BYTES: usize = 4 << 20;

/// The embedding model's tokenizer (chunks) and the target model's (passages).
struct Counters {
    chunk: TokenCounter,
    target: TokenCounter,
    /// Whether the two are one.
    chunk_counts: ChunkCounts,
}

/// A document's chunks and passages.
type Chunked = (Vec<DocChunk>, Vec<DocPassage>);

/// Chunks a block of documents in parallel.
fn chunk_block(
    block: &[Document],
    counters: &Counters,
    config: &ChunkConfig,
    passage_tokens: usize,
    ctx: &StageContext,
) -> Result<Vec<Chunked>, StageError> {
    let chunked = block.par_iter().map(|doc| {
        let chunks = chunk_document(&doc.text, &counters.chunk, config)?;
        let passages = group_passages(&doc.text, &chunks, &counters.target, passage_tokens, counters.chunk_counts)?;
        ctx.progress.advance(1);
        Ok::<_, strata_core::tokens::TokenizerError>((chunks, passages))
    });
    Ok(chunked.collect::<Result<_, _>>()?)
}

/// The stage's three files, written as blocks of documents are chunked, and running totals.
struct ChunkWriter<'a> {
    config: &'a ChunkConfig,
    chunks: RowWriter<ChunkRecord>,
    passages: RowWriter<PassageRecord>,
    documents: RowWriter<DocumentRecord>,
    tokens: u64,
    target_tokens: u64,
    small_chunks: u64,
    documents_without_chunks: u64,
}

impl<'a> ChunkWriter<'a> {
    fn create(ctx: &StageContext, config: &'a ChunkConfig) -> Result<Self, StageError> {
        Ok(Self {
            config,
            chunks: RowWriter::create(&ctx.output(WORK_CHUNKS)?, &ChunkRecord::fields(), &[])?,
            passages: RowWriter::create(&ctx.output(WORK_PASSAGES)?, &PassageRecord::fields(), &[])?,
            documents: RowWriter::create(&ctx.output(WORK_DOCUMENTS)?, &DocumentRecord::fields(), &[])?,
            tokens: 0,
            target_tokens: 0,
            small_chunks: 0,
            documents_without_chunks: 0,
        })
    }

    fn write_block(&mut self, block: &[Document], per_doc: Vec<Chunked>) -> Result<(), StageError> {
        for (doc, (doc_chunks, doc_passages)) in block.iter().zip(per_doc) {
            let mut passage_of = vec![0; doc_chunks.len()];
            for (k, p) in doc_passages.iter().enumerate() {
                let first_chunk = self.chunks.rows() + p.chunks.start as u64;
                passage_of[p.chunks.clone()].iter_mut().for_each(|x| *x = k);
                self.target_tokens += p.n_tokens as u64;
                let text = doc.text[p.byte_start..p.byte_end].to_string();
                self.passages.push(PassageRecord {
                    passage_id: passage_id(&doc.doc_id, k),
                    doc_id: doc.doc_id.clone(),
                    first_chunk,
                    n_chunks: p.chunks.len() as u32,
                    content_hash: strata_core::hash::text_hash(&text),
                    text,
                    n_tokens: p.n_tokens as u32,
                })?;
            }
            self.documents.push(DocumentRecord {
                doc_id: doc.doc_id.clone(),
                source: doc.source.clone(),
                n_bytes: doc.text.len() as u64,
                n_chunks: doc_chunks.len() as u32,
                metadata: doc.metadata.to_string(),
            })?;
            self.documents_without_chunks += doc_chunks.is_empty() as u64;
            for (ordinal, c) in doc_chunks.into_iter().enumerate() {
                self.tokens += c.n_tokens as u64;
                self.small_chunks += (c.n_tokens < self.config.min_tokens) as u64;
                self.chunks.push(ChunkRecord {
                    chunk_id: format!("{}#{}", doc.doc_id, ordinal),
                    doc_id: doc.doc_id.clone(),
                    source: doc.source.clone(),
                    ordinal: ordinal as u32,
                    heading_path: c.heading_path,
                    content_hash: strata_core::hash::text_hash(&c.text),
                    text: c.text,
                    n_tokens: c.n_tokens as u32,
                    byte_start: c.byte_start as u64,
                    byte_end: c.byte_end as u64,
                    passage_id: passage_id(&doc.doc_id, passage_of[ordinal]),
                })?;
            }
        }
        Ok(())
    }
}

/// A passage's stable id: its document and its position there.
fn passage_id(doc_id: &str, k: usize) -> String {
    format!("{doc_id}#p{k}")
}
