//! Taxonomy levels against human labels: normalised mutual information (arithmetic-mean
//! normalisation, as scikit-learn's default), adjusted Rand index and purity, over chunks,
//! computed from the cluster x label contingency table.

use crate::{EvalError, RunData};
use polars::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use strata_core::records::DocumentRecord;
use strata_core::rundir::WORK_DOCUMENTS;

/// How well one taxonomy level matches one label field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    /// Taxonomy depth (1 = the level below the root).
    pub depth: u8,
    /// Chunks whose document has the label, and the clusters and labels among them.
    pub chunks: usize,
    pub clusters: usize,
    pub labels: usize,
    /// MI / ((H(clusters) + H(labels)) / 2); 1 when both sides are a single group.
    pub nmi: f64,
    /// Adjusted Rand index (Hubert and Arabie); 1 when both sides are a single group.
    pub ari: f64,
    /// Share of chunks whose cluster's most common label is their own.
    pub purity: f64,
}

/// Agreement between the columns `cluster` and `label` of `frame`, over the rows whose label
/// is not null (`depth` is left 0 for the caller to set). Polars builds the contingency table
/// and its margins; the sums over them run here over the sorted tables, so the figures are
/// the same to the last bit on every run (polars' reductions may split work across threads).
pub fn agreement(frame: LazyFrame, cluster: &str, label: &str) -> PolarsResult<Agreement> {
    let table = frame
        .filter(col(label).is_not_null())
        .group_by([col(cluster).alias("u"), col(label).alias("v")])
        .agg([len().cast(DataType::Float64).alias("n")])
        .sort(["u", "v"], SortMultipleOptions::default())
        .collect()?
        .lazy();
    let by_cluster = table.clone().group_by_stable([col("u")]).agg([col("n").sum().alias("a"), col("n").max().alias("top")]);
    let by_label = table.clone().group_by_stable([col("v")]).agg([col("n").sum().alias("b")]);
    let cells = table
        .join(by_cluster.clone(), [col("u")], [col("u")], JoinArgs::new(JoinType::Left))
        .join(by_label.clone(), [col("v")], [col("v")], JoinArgs::new(JoinType::Left))
        .sort(["u", "v"], SortMultipleOptions::default())
        .collect()?;
    let (by_cluster, by_label) = (by_cluster.collect()?, by_label.collect()?);
    let (n, a, b) = (floats(&cells, "n")?, floats(&cells, "a")?, floats(&cells, "b")?);
    let (sizes_u, top, sizes_v) = (floats(&by_cluster, "a")?, floats(&by_cluster, "top")?, floats(&by_label, "b")?);

    let total: f64 = n.iter().sum();
    if total == 0.0 {
        return Ok(Agreement { depth: 0, chunks: 0, clusters: 0, labels: 0, nmi: 0.0, ari: 0.0, purity: 0.0 });
    }
    // MI = sum over cells of p_uv ln(p_uv / (p_u p_v)); H = -sum p ln p over each margin.
    let mi: f64 = n.iter().zip(&a).zip(&b).map(|((n, a), b)| n / total * (n * total / (a * b)).ln()).sum();
    let entropy = |sizes: &[f64]| -sizes.iter().map(|s| s / total * (s / total).ln()).sum::<f64>();
    let (h_u, h_v) = (entropy(&sizes_u), entropy(&sizes_v));
    let nmi = if h_u + h_v <= 0.0 { 1.0 } else { (mi / ((h_u + h_v) / 2.0)).clamp(0.0, 1.0) };
    // ARI from pair counts: index, its expectation under independence and its maximum.
    let pairs = |sizes: &[f64]| sizes.iter().map(|s| s * (s - 1.0) / 2.0).sum::<f64>();
    let (index, pairs_u, pairs_v) = (pairs(&n), pairs(&sizes_u), pairs(&sizes_v));
    let expected = pairs_u * pairs_v / (total * (total - 1.0) / 2.0).max(1.0);
    let max = (pairs_u + pairs_v) / 2.0;
    let ari = if (max - expected).abs() < 1e-12 { 1.0 } else { (index - expected) / (max - expected) };
    Ok(Agreement {
        depth: 0,
        chunks: total as usize,
        clusters: sizes_u.len(),
        labels: sizes_v.len(),
        nmi,
        ari,
        purity: top.iter().sum::<f64>() / total,
    })
}

fn floats(frame: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    Ok(frame.column(name)?.f64()?.to_vec().into_iter().map(|v| v.unwrap_or(0.0)).collect())
}

/// Each document's text-valued metadata fields; documents whose metadata is not a JSON
/// object count as having none.
fn metadata_strings(documents: &[DocumentRecord]) -> Vec<(&str, BTreeMap<String, String>)> {
    documents
        .iter()
        .map(|d| {
            let fields = match serde_json::from_str::<serde_json::Value>(&d.metadata) {
                Ok(serde_json::Value::Object(map)) => map.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string()))).collect(),
                _ => {
                    tracing::warn!(doc_id = d.doc_id, "document metadata is not a JSON object; ignored");
                    BTreeMap::new()
                }
            };
            (d.doc_id.as_str(), fields)
        })
        .collect()
}

/// The text fields of document metadata that can serve as labels: every one except those
/// that differ for nearly every document that has them (99% or more distinct values:
/// identifiers such as a URL, even when a few documents share one).
pub fn default_label_fields(documents: &[DocumentRecord]) -> Vec<String> {
    let mut values: BTreeMap<String, (usize, BTreeSet<String>)> = BTreeMap::new();
    for (_, fields) in metadata_strings(documents) {
        for (k, v) in fields {
            let entry = values.entry(k).or_default();
            entry.0 += 1;
            entry.1.insert(v);
        }
    }
    values.into_iter().filter(|(_, (docs, distinct))| distinct.len() * 100 < docs * 99).map(|(k, _)| k).collect()
}

/// For each of `fields`, the agreement of every taxonomy level (1..=deepest) with it.
pub fn label_agreement(data: &RunData, fields: &[String]) -> Result<BTreeMap<String, Vec<Agreement>>, EvalError> {
    let metadata = metadata_strings(&data.documents);
    let mut first: BTreeMap<&str, &BTreeMap<String, String>> = BTreeMap::new();
    for (doc, fields) in &metadata {
        first.entry(doc).or_insert(fields);
    }
    let doc_ids: Vec<&str> = first.keys().copied().collect();
    let mut label_columns = vec![Column::new("doc_id".into(), &doc_ids)];
    for field in fields {
        let values: Vec<Option<&str>> = doc_ids.iter().map(|d| first[d].get(field).map(String::as_str)).collect();
        if values.iter().all(Option::is_none) {
            let available: BTreeSet<&String> = metadata.iter().flat_map(|(_, f)| f.keys()).collect();
            let available = available.into_iter().map(String::as_str).collect::<Vec<_>>().join(", ");
            return Err(EvalError::NoSuchLabel { path: WORK_DOCUMENTS.into(), field: field.clone(), available });
        }
        label_columns.push(Column::new(format!("label:{field}").into(), values));
    }
    let labels = DataFrame::new_infer_height(label_columns)?;

    let doc_column: Vec<&str> = data.chunks.iter().map(|c| c.doc_id.as_str()).collect();
    let mut chunk_columns = vec![Column::new("doc_id".into(), doc_column)];
    for depth in 1..=data.max_depth() {
        chunk_columns.push(Column::new(format!("level:{depth}").into(), data.clusters_at(depth)));
    }
    let joined = DataFrame::new_infer_height(chunk_columns)?
        .lazy()
        .join(labels.lazy(), [col("doc_id")], [col("doc_id")], JoinArgs::new(JoinType::Left))
        .collect()?;

    let mut out = BTreeMap::new();
    for field in fields {
        let mut levels = Vec::new();
        for depth in 1..=data.max_depth() {
            let a = agreement(joined.clone().lazy(), &format!("level:{depth}"), &format!("label:{field}"))?;
            levels.push(Agreement { depth, ..a });
        }
        out.insert(field.clone(), levels);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(clusters: &[u32], labels: &[&str]) -> Agreement {
        let frame = df!("c" => clusters, "l" => labels).expect("frame");
        agreement(frame.lazy(), "c", "l").expect("agreement")
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn identical_partitions_score_one_whatever_the_names() {
        let a = score(&[0, 0, 1, 1, 2, 2], &["x", "x", "y", "y", "z", "z"]);
        assert!(close(a.nmi, 1.0) && close(a.ari, 1.0) && close(a.purity, 1.0), "{a:?}");
        assert_eq!((a.chunks, a.clusters, a.labels), (6, 3, 3));
    }

    #[test]
    fn independent_partitions_score_zero() {
        // Every cluster holds every label equally often: MI = 0, ARI below 0, purity 1/2.
        let a = score(&[0, 0, 1, 1], &["x", "y", "x", "y"]);
        assert!(close(a.nmi, 0.0), "{a:?}");
        assert!(close(a.ari, -0.5), "{a:?}");
        assert!(close(a.purity, 0.5), "{a:?}");
    }

    #[test]
    fn worked_example_matches_hand_computation() {
        // clusters {0,0,0,1,1,1} vs labels {x,x,y,y,y,y}: contingency [[2,1],[0,3]].
        let a = score(&[0, 0, 0, 1, 1, 1], &["x", "x", "y", "y", "y", "y"]);
        let ln = f64::ln;
        let mi =
            (2.0 / 6.0) * ln(2.0 * 6.0 / (3.0 * 2.0)) + (1.0 / 6.0) * ln(6.0 / (3.0 * 4.0)) + (3.0 / 6.0) * ln(3.0 * 6.0 / (3.0 * 4.0));
        let h_u = ln(2.0);
        let h_v = -(1.0 / 3.0) * ln(1.0 / 3.0) - (2.0 / 3.0) * ln(2.0 / 3.0);
        assert!(close(a.nmi, mi / ((h_u + h_v) / 2.0)), "{a:?}");
        // index = C(2,2)+C(3,2) = 4; sum_a = 3+3 = 6; sum_b = 1+6 = 7; expected = 42/15.
        let expected = 6.0 * 7.0 / 15.0;
        assert!(close(a.ari, (4.0 - expected) / (6.5 - expected)), "{a:?}");
        assert!(close(a.purity, 5.0 / 6.0), "{a:?}");
        // scikit-learn gives NMI 0.4787 and ARI 0.3243 on these labels.
        assert!((a.nmi - 0.4787).abs() < 1e-4 && (a.ari - 0.3243).abs() < 1e-4, "{a:?}");
    }

    #[test]
    fn rows_without_a_label_are_left_out() {
        let frame = df!("c" => [0u32, 0, 1, 1], "l" => [Some("x"), None, Some("y"), Some("y")]).expect("frame");
        let a = agreement(frame.lazy(), "c", "l").expect("agreement");
        assert_eq!(a.chunks, 3);
        assert!(close(a.nmi, 1.0));
    }

    fn doc(id: &str, meta: &str) -> DocumentRecord {
        DocumentRecord { doc_id: id.into(), source: "f.jsonl".into(), n_bytes: 1, n_chunks: 1, metadata: meta.into() }
    }

    #[test]
    fn default_fields_skip_identifiers_and_non_text() {
        let docs = [
            doc("a", r#"{"source": "S1", "url": "u1", "year": 2001}"#),
            doc("b", r#"{"source": "S1", "url": "u2", "year": 2001}"#),
            doc("c", "not json"),
        ];
        assert_eq!(default_label_fields(&docs), vec!["source".to_string()]);
    }

    #[test]
    fn label_agreement_per_level_over_chunks() {
        let mut data = crate::data::tests::toy(&[("a", 2, 40), ("a", 3, 40), ("b", 4, 40), ("c", 4, 40)], &[[1.0, 0.0]; 4]);
        data.documents = vec![doc("a", r#"{"site": "A"}"#), doc("b", r#"{"site": "B"}"#), doc("c", r#"{"site": "B"}"#)];
        let out = label_agreement(&data, &["site".to_string()]).expect("agreement");
        let levels = &out["site"];
        assert_eq!(levels.len(), 2);
        assert!(close(levels[0].nmi, 1.0) && close(levels[0].purity, 1.0), "{levels:?}");
        assert_eq!((levels[1].depth, levels[1].clusters), (2, 3));
        assert!(levels[1].nmi < 1.0 && close(levels[1].purity, 1.0));
        assert!(matches!(label_agreement(&data, &["nope".to_string()]), Err(EvalError::NoSuchLabel { .. })));
    }
}
