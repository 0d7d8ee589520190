//! strata-chunk: ingest and chunking, the first stage.
//!
//! It owns reading a corpus (a folder or file of `.txt`/`.md`/`.markdown`, JSONL or Parquet
//! with a `text` column), Unicode normalisation, splitting documents into sections by their
//! Markdown headings and sections into chunks sized in the embedding model's tokens.
//! It writes `work/chunks.parquet` and `work/documents.parquet`; it knows nothing of
//! embeddings or the taxonomy.

mod ingest;
mod sections;
mod split;

pub use ingest::{scan_corpus, CorpusFile, CorpusScan, Document, FileKind, IngestError, Skipped};
pub use sections::{sections, Section};
pub use split::{chunk_document, DocChunk};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::PathBuf;
use strata_core::parquet_io::RowWriter;
use strata_core::records::{ChunkRecord, DocumentRecord};
use strata_core::rundir::{WORK_CHUNKS, WORK_DOCUMENTS};
use strata_core::summary::ChunkSummary;
use strata_core::tokens::TokenCounter;
use strata_core::{Stage, StageContext, StageError, StageName, StageStats, StageSummary};

/// How documents are cut into chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkConfig {
    /// Largest model input per chunk, in tokens, counting the model's two special tokens
    /// ([CLS], [SEP]); all-MiniLM-L6-v2 reads at most 256.
    pub max_tokens: usize,
    /// A chunk under this many tokens is merged with a neighbour in its section when the
    /// maximum allows (and selection never takes it).
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

/// The chunking stage over a scanned corpus.
pub struct ChunkStage {
    pub scan: CorpusScan,
    pub tokenizer_path: PathBuf,
    pub tokenizer_sha256: String,
    pub config: ChunkConfig,
}

impl Stage for ChunkStage {
    fn name(&self) -> StageName {
        StageName::Chunk
    }

    fn reads(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![WORK_CHUNKS, WORK_DOCUMENTS]
    }

    fn fingerprint(&self) -> Result<serde_json::Value, StageError> {
        let files: Vec<_> = self.scan.files.iter().map(|f| json!([f.rel, f.sha256])).collect();
        Ok(json!({"config": self.config, "tokenizer": self.tokenizer_sha256, "files": files}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        self.config.validate()?;
        let counter = TokenCounter::from_file(&self.tokenizer_path)?;
        let mut out = ChunkWriter::create(ctx, &self.config)?;
        // Documents are chunked a block at a time (in parallel within the block) and written
        // as they go, so memory holds one block, never the corpus.
        let mut block: Vec<Document> = Vec::new();
        let mut block_bytes = 0;
        ctx.progress.start("chunk", None);
        self.scan.for_each_document(|doc| -> Result<(), StageError> {
            block_bytes += doc.text.len();
            block.push(doc);
            if block_bytes >= BLOCK_BYTES {
                out.write_block(&block, &counter, ctx)?;
                block.clear();
                block_bytes = 0;
            }
            Ok(())
        })?;
        out.write_block(&block, &counter, ctx)?;
        ctx.progress.finish();
        if out.chunks.rows() == 0 {
            return Err(IngestError::NoText { corpus: self.scan.root.clone() }.into());
        }
        let (documents, chunks) = (out.documents.rows(), out.chunks.rows());
        let summary = ChunkSummary {
            files: self.scan.files.len() as u64,
            documents,
            documents_without_chunks: out.documents_without_chunks,
            corpus_tokens: out.tokens,
            chunks_under_min_tokens: out.small_chunks,
        };
        out.chunks.close()?;
        out.documents.close()?;
        Ok(StageStats { rows_in: documents, rows_out: chunks, summary: StageSummary::Chunk(summary) })
    }
}

/// Text per block of documents chunked together.
const BLOCK_BYTES: usize = 4 << 20;

/// The stage's two files, written as blocks of documents are chunked, and running totals.
struct ChunkWriter<'a> {
    config: &'a ChunkConfig,
    chunks: RowWriter<ChunkRecord>,
    documents: RowWriter<DocumentRecord>,
    tokens: u64,
    small_chunks: u64,
    documents_without_chunks: u64,
}

impl<'a> ChunkWriter<'a> {
    fn create(ctx: &StageContext, config: &'a ChunkConfig) -> Result<Self, StageError> {
        Ok(Self {
            config,
            chunks: RowWriter::create(&ctx.output(WORK_CHUNKS)?, &ChunkRecord::fields(), &[])?,
            documents: RowWriter::create(&ctx.output(WORK_DOCUMENTS)?, &DocumentRecord::fields(), &[])?,
            tokens: 0,
            small_chunks: 0,
            documents_without_chunks: 0,
        })
    }

    fn write_block(&mut self, block: &[Document], counter: &TokenCounter, ctx: &StageContext) -> Result<(), StageError> {
        let per_doc: Vec<Vec<DocChunk>> = block
            .par_iter()
            .map(|doc| {
                let chunks = chunk_document(&doc.text, counter, self.config);
                ctx.progress.advance(1);
                chunks
            })
            .collect::<Result<_, _>>()?;
        for (doc, doc_chunks) in block.iter().zip(per_doc) {
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
                })?;
            }
        }
        Ok(())
    }
}
