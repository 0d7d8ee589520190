//! `strata search`: BM25 over a run's index, optionally within a taxonomy subtree.

use crate::cli::SearchArgs;
use anyhow::Result;
use strata_index::Searcher;

pub fn search(args: &SearchArgs) -> Result<()> {
    let searcher = Searcher::open(&args.run)?;
    let hits = searcher.search(&args.query, args.under.as_deref(), args.k)?;
    if args.json {
        for h in &hits {
            outln!("{}", serde_json::to_string(h)?)?;
        }
        return Ok(());
    }
    if hits.is_empty() {
        outln!("no hits")?;
    }
    for (rank, h) in hits.iter().enumerate() {
        let excerpt: String = h.text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
        outln!("{:>2}. {:.2}  {}  [{}]", rank + 1, h.score, h.chunk_id, h.taxonomy)?;
        outln!("    {excerpt}")?;
    }
    Ok(())
}
