//! The embed stage of a sharded run: the shards' vectors joined in shard order, one row per
//! chunk of the merged `work/chunks.parquet`.

use crate::BatchStats;
use strata_core::parquet_io::{num_rows, read_metadata, record_batches, BatchWriter};
use strata_core::records::EmbeddingRecord;
use strata_core::rundir::{EMBEDDINGS, WORK_CHUNKS};
use strata_core::shard::Parts;
use strata_core::summary::EmbedSummary;
use strata_core::{Stage, StageContext, StageError, StageName, StageStats, StageSummary};

/// Joins the embed stage's file of every shard.
pub struct MergeEmbeddings {
    pub parts: Parts,
}

impl Stage for MergeEmbeddings {
    fn name(&self) -> StageName {
        StageName::Embed
    }

    fn reads(&self) -> Vec<&'static str> {
        crate::READS.to_vec()
    }

    fn writes(&self) -> Vec<&'static str> {
        crate::WRITES.to_vec()
    }

    fn fingerprint(&self) -> Result<serde_json::Value, StageError> {
        self.parts.fingerprint(StageName::Embed)
    }

    fn run(&self, ctx: &StageContext) -> Result<StageStats, StageError> {
        let first = self.parts.dirs.first().ok_or("a sharded run has at least one shard")?.path(EMBEDDINGS);
        // Model, dimension and pooling, as each shard wrote them (sorted, as the writer keeps them).
        let mut metadata: Vec<(String, String)> = read_metadata(&first)?.into_iter().collect();
        metadata.sort();
        let dim: usize =
            metadata.iter().find(|(k, _)| k == "dim").and_then(|(_, v)| v.parse().ok()).ok_or("no `dim` in the shards' embeddings")?;
        let metadata: Vec<(&str, String)> = metadata.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let mut out = BatchWriter::create(&ctx.output(EMBEDDINGS)?, &EmbeddingRecord::fields(dim), &metadata)?;
        let (mut total, mut tokens) = (EmbedSummary::default(), BatchStats::default());
        for (index, (dir, (_, summary))) in self.parts.dirs.iter().zip(self.parts.records(StageName::Embed)?).enumerate() {
            let StageSummary::Embed(part) = summary else { return Err("an embed record holds another stage's summary".into()) };
            self.parts.verify(index, StageName::Embed)?;
            // Texts met in two shards count in both: the run's "distinct" is per shard.
            total.distinct_texts += part.distinct_texts;
            total.embedded_texts += part.embedded_texts;
            total.cached_texts += part.cached_texts;
            tokens.real_tokens += part.tokens_real;
            tokens.padded_tokens += part.tokens_computed;
            for batch in record_batches(&dir.path(EMBEDDINGS))? {
                out.push(batch?)?;
            }
        }
        let chunks = num_rows(&ctx.run.path(WORK_CHUNKS))?;
        if out.rows() != chunks {
            return Err(format!("the shards hold {} vectors for {chunks} chunks; rerun the shards' embed stage", out.rows()).into());
        }
        out.close()?;
        total.tokens_real = tokens.real_tokens;
        total.tokens_computed = tokens.padded_tokens;
        total.padding_ratio = tokens.padding_ratio();
        Ok(StageStats { rows_in: chunks, rows_out: chunks, summary: StageSummary::Embed(total) })
    }
}
