//! `strata eval` end to end: the demo documents as a labelled JSONL corpus (label `source` =
//! the specialty in the file name), a run, then eval with questions; checks eval.json.

mod common;

use common::{repo, stderr, strata, Fixture};
use std::path::PathBuf;

/// The demo documents as `corpus/docs.jsonl` (id, source, url, text) and `questions.jsonl`
/// ("What is <title>?" per document, plus one about a document that is not in the corpus).
fn labelled_corpus() -> Fixture {
    let f = Fixture::with_recipe("[taxonomy]\ndepth = 2\nk_max = 10\n[select]\nbudget = 0.15\n");
    let mut docs = String::new();
    let mut questions = String::new();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(repo().join("fixtures/medicine")).expect("fixtures").map(|e| e.expect("entry").path()).collect();
    files.sort();
    for path in files {
        let id = path.file_stem().and_then(|s| s.to_str()).expect("name").to_string();
        let text = std::fs::read_to_string(&path).expect("read");
        let specialty = id.split('-').next().expect("prefix");
        let title = text.lines().next().unwrap_or_default().trim_start_matches('#').trim();
        docs += &serde_json::json!({"id": id, "source": specialty, "url": format!("https://example.org/{id}"), "text": text}).to_string();
        docs.push('\n');
        questions += &serde_json::json!({"question": format!("What is {title}?"), "doc_id": id}).to_string();
        questions.push('\n');
    }
    questions += "{\"question\": \"about a document that is not in the corpus\", \"doc_id\": \"elsewhere\"}\n";
    f.file("docs.jsonl", docs);
    std::fs::write(f.tmp.path().join("questions.jsonl"), questions).expect("questions");
    f
}

#[test]
fn eval_writes_labels_retrieval_and_coverage() {
    let f = labelled_corpus();
    let (out, questions) = (f.out.to_str().expect("utf-8"), f.tmp.path().join("questions.jsonl"));
    let o = strata(&["run", "--recipe", f.recipe.to_str().expect("utf-8"), "-q"]);
    assert!(o.status.success(), "run failed: {}", stderr(&o));

    let o =
        strata(&["eval", "--run", out, "--questions", questions.to_str().expect("utf-8"), "--budgets", "0.05,0.15", "--random-seeds", "3"]);
    assert!(o.status.success(), "eval failed: {}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("NMI") && table.contains("recall@10") && table.contains("first_passage") && table.contains("Topic first"),
        "{table}"
    );

    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(f.out.join("eval.json")).expect("eval.json")).expect("json");
    // `url` differs for every document: an identifier, not a label.
    let labels = eval["labels"].as_object().expect("labels");
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["source"]);
    let levels = labels["source"].as_array().expect("levels");
    assert_eq!(levels.len(), 2);
    // Level 2 refines level 1, so its purity cannot be lower.
    let purity = |l: &serde_json::Value| l["purity"].as_f64().expect("purity");
    assert!(purity(&levels[1]) >= purity(&levels[0]), "{levels:?}");
    assert!(levels[0]["nmi"].as_f64().expect("nmi") > 0.3, "the specialties should show at level 1: {levels:?}");

    // The labels, read against the run's own texts: phrases of their nodes, none repeating
    // an ancestor, no siblings alike; the taxonomy stage's own record agrees.
    let quality = &eval["label_quality"];
    let count = |k: &str| quality[k].as_u64().expect(k);
    assert!(count("labels") > 0, "{quality}");
    assert!(count("verbatim") as f64 >= 0.95 * count("labels") as f64, "{quality}");
    assert_eq!((count("redundant"), count("alike_sibling_pairs")), (0, 0), "{quality}");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(f.out.join("manifest.json")).expect("manifest")).expect("json");
    assert_eq!(&manifest["stages"]["taxonomy"]["labels"], quality);
    // taxonomy.json says where each label came from; a heading covers its node both ways.
    let tree: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.out.join("taxonomy.json")).expect("taxonomy.json")).expect("json");
    assert_eq!(tree["root"]["label_source"], "domain");
    let mut stack = vec![&tree["root"]];
    let mut headings = 0;
    while let Some(node) = stack.pop() {
        if node["label_source"] == "heading" {
            headings += 1;
            let share = |k: &str| node["heading_covers"][k].as_f64().expect(k);
            assert!(share("share_of_node") >= 0.5 && share("share_of_heading") >= 0.5, "{node}");
        }
        stack.extend(node["children"].as_array().expect("children"));
    }
    assert_eq!(headings, manifest["stages"]["taxonomy"]["heading_labels"].as_u64().expect("heading_labels"));

    // Every demo document fits in one passage (1,024 tokens), and passages are what is
    // clustered: no document is split across level-1 nodes.
    let topic = &eval["topic_first"];
    assert_eq!((topic["multi_chunk_documents"].as_u64(), topic["documents_whole_at_level1"].as_f64()), (Some(40), Some(1.0)), "{topic}");

    assert_eq!(eval["settings"]["questions"]["used"], 40);
    assert_eq!(eval["settings"]["questions"]["about_other_documents"], 1);
    for method in ["bm25", "dense", "hybrid"] {
        let r = &eval["retrieval"][method];
        // MRR@10 lies between recall@1 and recall@10.
        let (r1, mrr, r10) =
            (r["recall@1"].as_f64().expect("r@1"), r["mrr"].as_f64().expect("mrr"), r["recall@10"].as_f64().expect("r@10"));
        assert!(r1 <= mrr && mrr <= r10, "{method}: {r}");
        assert!(r["recall@10"].as_f64().expect("recall") > 0.5, "{method}: {r}");
    }

    let rows = eval["coverage"].as_array().expect("coverage");
    assert_eq!(rows.len(), 6);
    for r in rows {
        assert!(r["selected_tokens"].as_f64().expect("tokens") <= r["budget_tokens"].as_f64().expect("budget"), "{r}");
        if r["method"] == "strata" {
            // Selection never takes a marked duplicate or a near-duplicate pair.
            assert_eq!(r["duplicate_token_share"].as_f64(), Some(0.0), "{r}");
        }
    }
    let strata_rows: Vec<&serde_json::Value> = rows.iter().filter(|r| r["method"] == "strata").collect();
    assert_eq!(strata_rows[0]["selection"], "recomputed");
    assert_eq!(strata_rows[1]["selection"], "run");
    assert!(rows.iter().any(|r| r["method"] == "random" && r["runs"] == 3 && r.get("facility_location_std").is_some()));
    let report = std::fs::read_to_string(f.out.join("report.html")).expect("report");
    assert!(report.contains("<table class=\"coverage\">"));

    // A run compared with itself: the same partition at every level, the same vectors.
    let o = strata(&["eval", "--run", out, "--compare", out, "--budgets", "0.15", "--json"]);
    assert!(o.status.success(), "eval --compare failed: {}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let c = &eval["comparison"];
    assert_eq!(c["only_here"], 0);
    assert_eq!(c["levels"].as_array().expect("levels").len(), 2);
    assert!(c["levels"].as_array().expect("levels").iter().all(|l| l["nmi"].as_f64().expect("nmi") > 0.999999), "{c}");
    assert!(c["vector_cosine"]["min"].as_f64().expect("cosine") > 0.9999, "{c}");

    let o = strata(&["eval", "--run", out, "--labels", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope"));
}
