//! strata-index: the retrieval (RAG) route: a tantivy index of every chunk, with the
//! taxonomy path as a facet, the chunk vectors for dense search, and search over both
//! (BM25, dense, hybrid; optionally within a subtree).
//!
//! It owns the index schema, the dense files and the queries; it reads the published
//! `chunks.parquet` and the embeddings, and writes `index/` and `dense/`. It
//! does not embed: the caller hands in the query's vector.

pub mod dense;
mod fusion;
mod parts;
mod retrieve;

pub use dense::{DenseIndex, DenseMeta};
pub use fusion::{reciprocal_rank_fusion, RRF_K};
pub use parts::PartIndexStage;
pub use retrieve::{Mode, Retriever, FUSION_DEPTH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use strata_core::rundir::{CHUNKS, DENSE_DIR, EMBEDDINGS, INDEX_DIR};
use strata_core::summary::IndexSummary;
use strata_core::{parquet_io, Stage, StageContext, StageError, StageName, StageStats, StageSummary};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, QueryParser, TermQuery, TermSetQuery};
use tantivy::schema::{
    Facet, FacetOptions, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value as _, FAST, INDEXED, STORED, STRING,
};
use tantivy::{doc, Index, TantivyDocument, Term};

/// English stemming: a question's "symptoms" finds a chunk's "symptom".
const TOKENIZER: &str = "en_stem";
/// Writer memory; one thread, so the index is laid out the same way on every run.
const WRITER_BYTES: usize = 100_000_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("failed to open the index `{path}`; run `strata run` (or the index stage) first")]
    Open {
        path: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },
    #[error("index `{path}` has no field `{field}`; it was built by another version, rebuild it")]
    Field { path: PathBuf, field: &'static str },
    #[error("invalid subtree `{0}`: give a taxonomy path such as \"/Cardiology/Heart failure\"")]
    Under(String),
    #[error("no taxonomy node has the path `{0}`")]
    UnknownSubtree(String),
    #[error("unknown search mode `{0}`: bm25, dense or hybrid")]
    Mode(String),
    #[error("the query's vector has {query} values, the run's vectors {index}: embed it with the run's model")]
    Width { query: usize, index: usize },
    #[error("{0} search needs the query's vector")]
    NoVector(&'static str),
    #[error("failed to read `{path}`; rerun the index stage")]
    Dense {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is damaged ({message}); rerun the index stage")]
    DenseFormat { path: PathBuf, message: String },
    #[error("`{path}`: {message}")]
    Taxonomy { path: PathBuf, message: String },
    #[error("failed to merge the shards' indexes into `{path}`")]
    Merge {
        path: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },
    #[error("search failed in `{path}`")]
    Search {
        path: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },
}

fn schema() -> Schema {
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default().set_tokenizer(TOKENIZER).set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let mut b = Schema::builder();
    b.add_text_field("chunk_id", STRING | STORED);
    b.add_text_field("doc_id", STRING | STORED);
    b.add_text_field("text", text.clone() | STORED);
    b.add_text_field("headings", text | STORED);
    b.add_facet_field("taxonomy", FacetOptions::default());
    b.add_text_field("taxonomy_path", STORED);
    b.add_u64_field("node_id", INDEXED | STORED | FAST);
    b.build()
}

/// What the index keeps of a published chunk.
#[derive(Deserialize)]
struct IndexedChunk {
    chunk_id: String,
    doc_id: String,
    text: String,
    heading_path: Vec<String>,
    node_id: u32,
    taxonomy_path: Vec<String>,
}

/// The columns of `chunks.parquet` an [`IndexedChunk`] reads.
const INDEXED_COLUMNS: [&str; 6] = ["chunk_id", "doc_id", "text", "heading_path", "node_id", "taxonomy_path"];

/// Version of the index's schema and layout, in the stage's fingerprints.
const SCHEMA_VERSION: u32 = 1;

/// The index stage. In a sharded run's reduce (`parts`), when every shard has indexed its own
/// chunks of the chunks this run published (`strata index --shard I/N`, [`PartIndexStage`]),
/// it merges their indexes; otherwise it indexes every chunk itself. Both give the same
/// documents in the same order.
pub struct IndexStage {
    pub parts: Option<strata_core::shard::Parts>,
}

impl Stage for IndexStage {
    fn name(&self) -> StageName {
        StageName::Index
    }

    fn reads(&self) -> Vec<&'static str> {
        vec![CHUNKS, EMBEDDINGS]
    }

    fn writes(&self) -> Vec<&'static str> {
        vec![INDEX_DIR, DENSE_DIR]
    }

    fn fingerprint(&self) -> Result<Value, StageError> {
        Ok(json!({"tokenizer": TOKENIZER, "schema": SCHEMA_VERSION, "dense": 1}))
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let path = ctx.run.path(CHUNKS);
        let n_chunks = parquet_io::num_rows(&path)?;
        let dir = ctx.output(INDEX_DIR)?;
        std::fs::create_dir_all(&dir)?;
        let indexes = match &self.parts {
            Some(parts) => parts::current_indexes(ctx, parts)?,
            None => None,
        };
        let merged_parts = match indexes {
            Some(indexes) => {
                ctx.progress.start(&format!("index: merging {} shards' indexes", indexes.len()), None);
                parts::merge(&indexes, &dir)?;
                Some(indexes.len() as u64)
            }
            None => {
                ctx.progress.start("index", Some(n_chunks));
                index_chunks(&dir, parquet_io::batches::<IndexedChunk>(&path, &INDEXED_COLUMNS)?, ctx.progress)?;
                None
            }
        };
        ctx.progress.finish();
        write_dense(ctx, &path)?;
        Ok(StageStats { rows_in: n_chunks, rows_out: n_chunks, summary: StageSummary::Index(IndexSummary { merged_parts }) })
    }
}

/// A tantivy index of `chunks` in `dir`, in their order: one writer thread, so the index is
/// laid out the same way on every run; tantivy bounds its own memory (`WRITER_BYTES`).
fn index_chunks(
    dir: &Path,
    chunks: impl Iterator<Item = Result<Vec<IndexedChunk>, parquet_io::ParquetIoError>>,
    progress: &dyn strata_core::Progress,
) -> Result<(), StageError> {
    let schema = schema();
    let index = Index::create_in_dir(dir, schema.clone())?;
    let f = |name| schema.get_field(name);
    let (chunk_id, doc_id, text, headings, taxonomy, taxonomy_path, node_id) =
        (f("chunk_id")?, f("doc_id")?, f("text")?, f("headings")?, f("taxonomy")?, f("taxonomy_path")?, f("node_id")?);
    let mut writer = index.writer_with_num_threads(1, WRITER_BYTES)?;
    for batch in chunks {
        for c in batch? {
            let facet = Facet::from_path(&c.taxonomy_path);
            writer.add_document(doc!(
                chunk_id => c.chunk_id,
                doc_id => c.doc_id,
                text => c.text,
                headings => c.heading_path.join(" > "),
                taxonomy_path => facet.to_string(),
                taxonomy => facet,
                node_id => c.node_id as u64,
            ))?;
            progress.advance(1);
        }
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    Ok(())
}

/// `dense/`: every chunk's vector and leaf, in `chunks` order, the vectors read in step.
fn write_dense(ctx: &StageContext, chunks: &Path) -> Result<(), StageError> {
    #[derive(Deserialize)]
    struct Row {
        chunk_id: String,
        node_id: u32,
    }
    let embeddings = ctx.run.path(EMBEDDINGS);
    let mut vectors = parquet_io::batches::<strata_core::records::EmbeddingRecord>(&embeddings, &[])?;
    let mut dense = dense::DenseWriter::create(&ctx.output(DENSE_DIR)?)?;
    for batch in parquet_io::batches::<Row>(chunks, &["chunk_id", "node_id"])? {
        let batch = batch?;
        for (c, v) in batch.iter().zip(vectors.next_in_step(batch.len())?) {
            if v.chunk_id != c.chunk_id {
                return Err(parquet_io::ParquetIoError::OutOfStep { path: embeddings }.into());
            }
            dense.push(&c.chunk_id, c.node_id, &v.embedding)?;
        }
    }
    vectors.end_in_step()?;
    dense.finish(dense_meta(&embeddings)?)?;
    Ok(())
}

/// What the embeddings file says about the model that made it (width and count are filled
/// in by the writer).
fn dense_meta(embeddings: &Path) -> Result<DenseMeta, parquet_io::ParquetIoError> {
    let meta = parquet_io::read_metadata(embeddings)?;
    let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
    Ok(DenseMeta { model: get("model"), variant: get("variant"), model_sha256: get("model_sha256"), dim: 0, rows: 0 })
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub score: f32,
    pub chunk_id: String,
    pub doc_id: String,
    pub node_id: u64,
    /// The taxonomy path, e.g. `/Cardiology/Heart failure`.
    pub taxonomy: String,
    pub text: String,
}

/// An opened index, ready for many queries.
pub struct Searcher {
    path: PathBuf,
    index: Index,
    reader: tantivy::IndexReader,
}

impl Searcher {
    pub fn open(run_dir: &Path) -> Result<Self, IndexError> {
        let path = run_dir.join(INDEX_DIR);
        let open = |source| IndexError::Open { path: path.clone(), source };
        let index = Index::open_in_dir(&path).map_err(open)?;
        let reader = index.reader().map_err(open)?;
        Ok(Self { path, index, reader })
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The `k` best chunks for `query` (BM25 over text and headings), within the subtree
    /// `under` (a taxonomy path like "/Cardiology") when given.
    pub fn search(&self, query: &str, under: Option<&str>, k: usize) -> Result<Vec<Hit>, IndexError> {
        let facet = match under.map(|u| u.trim().trim_matches('/')).filter(|u| !u.is_empty()) {
            Some(u) => Some(Facet::from_text(&format!("/{u}")).map_err(|_| IndexError::Under(u.to_string()))?),
            None => None,
        };
        self.search_in(query, facet.as_ref(), k)
    }

    /// The `k` best chunks for `query` (BM25) within the subtree whose taxonomy facet is
    /// `under` (none: everything).
    pub fn search_in(&self, query: &str, under: Option<&Facet>, k: usize) -> Result<Vec<Hit>, IndexError> {
        let schema = self.index.schema();
        let field = |name: &'static str| schema.get_field(name).map_err(|_| IndexError::Field { path: self.path.clone(), field: name });
        let (text, headings, taxonomy) = (field("text")?, field("headings")?, field("taxonomy")?);
        let mut parser = QueryParser::for_index(&self.index, vec![text, headings]);
        parser.set_field_boost(headings, 0.5);
        let (parsed, errors) = parser.parse_query_lenient(query);
        if let Some(e) = errors.first() {
            tracing::debug!(query, error = %e, "query parsed leniently");
        }
        let query_obj: Box<dyn tantivy::query::Query> = match under {
            None => parsed,
            Some(facet) => {
                let subtree = TermQuery::new(Term::from_facet(taxonomy, facet), IndexRecordOption::Basic);
                Box::new(BooleanQuery::new(vec![(Occur::Must, parsed), (Occur::Must, Box::new(subtree))]))
            }
        };
        self.top(&*query_obj, k)
    }

    /// The chunks `chunk_ids` the index holds, as hits (score 0) by id, in one search.
    pub fn get_many(&self, chunk_ids: &[&str]) -> Result<std::collections::HashMap<String, Hit>, IndexError> {
        if chunk_ids.is_empty() {
            return Ok(Default::default());
        }
        let field =
            self.index.schema().get_field("chunk_id").map_err(|_| IndexError::Field { path: self.path.clone(), field: "chunk_id" })?;
        let query = TermSetQuery::new(chunk_ids.iter().map(|id| Term::from_field_text(field, id)));
        Ok(self.top(&query, chunk_ids.len())?.into_iter().map(|h| (h.chunk_id.clone(), Hit { score: 0.0, ..h })).collect())
    }

    fn top(&self, query: &dyn tantivy::query::Query, k: usize) -> Result<Vec<Hit>, IndexError> {
        let schema = self.index.schema();
        let searcher = self.reader.searcher();
        let search_err = |source| IndexError::Search { path: self.path.clone(), source };
        let top = searcher.search(query, &TopDocs::with_limit(k.max(1)).order_by_score()).map_err(search_err)?;
        top.into_iter()
            .map(|(score, addr)| {
                let d: TantivyDocument = searcher.doc(addr).map_err(search_err)?;
                let get = |name: &'static str| -> String {
                    schema
                        .get_field(name)
                        .ok()
                        .and_then(|f| d.get_first(f))
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                };
                let node_id = schema.get_field("node_id").ok().and_then(|f| d.get_first(f)).and_then(|v| v.as_u64()).unwrap_or_default();
                Ok(Hit {
                    score,
                    chunk_id: get("chunk_id"),
                    doc_id: get("doc_id"),
                    node_id,
                    taxonomy: get("taxonomy_path"),
                    text: get("text"),
                })
            })
            .collect()
    }
}
