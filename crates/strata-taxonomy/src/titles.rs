//! Titles by the recipe's LLM: short abstractive names for the knowledge points, as
//! StructTuning has its LLM write them. One request per inner node titles all its children
//! at once, from each child's keywords and the passages nearest its centre, so siblings are
//! titled side by side; levels go top-down, so a child's request knows its parent's title.
//! Each title is checked (at most eight words, no control characters, not its parent's or an
//! ancestor's, not an earlier sibling's); a rejected title, or every title of a failed
//! request, keeps the keyword label, and the failure is counted.

use serde_json::{json, Value};
use std::collections::HashSet;
use strata_core::llm::{complete_all, only_array, JsonModel, JsonRequest, LlmFailure, LlmTally, LlmUnavailable};
use strata_core::records::TaxonomyNode;
use strata_core::{Progress, TaxonomyTree};

/// Bumped when the prompt or the checks change (part of the stage's fingerprint).
pub const PROMPT_VERSION: u32 = 1;

/// Most words in a title.
const MAX_WORDS: usize = 8;
/// Characters of each excerpt shown per child.
const EXCERPT_CHARS: usize = 600;

/// A title for every node but the root (`None` where the keyword label stays), in id order.
/// `excerpts` holds, per node, the texts nearest its centre.
pub fn title_nodes(
    model: &dyn JsonModel,
    domain: &str,
    tree: &TaxonomyTree,
    excerpts: &[Vec<String>],
    progress: &dyn Progress,
    tally: &LlmTally,
) -> Result<Vec<Option<String>>, LlmUnavailable> {
    let n = tree.nodes().len();
    let mut titles: Vec<Option<String>> = vec![None; n];
    let inner: Vec<u32> = (0..n as u32).filter(|&id| !tree.children(id).is_empty()).collect();
    progress.start("titles (LLM)", Some(inner.len() as u64));
    let max_depth = tree.nodes().iter().map(|n| n.depth).max().unwrap_or(0);
    for depth in 0..max_depth {
        let parents: Vec<u32> = inner.iter().copied().filter(|&id| tree.node(id).depth == depth).collect();
        let named = |id: u32| titles[id as usize].clone().unwrap_or_else(|| tree.node(id).label.clone());
        let requests: Vec<JsonRequest> = parents.iter().map(|&p| request(domain, tree, p, &named, excerpts)).collect();
        let replies = complete_all(model, &requests, progress, tally)?;
        for (&parent, reply) in parents.iter().zip(replies) {
            // A failed request is counted already; a reply is counted again for what it breaks.
            let Ok(reply) = reply else { continue };
            let Some(accepted) = tally.checked(accept(tree, parent, &reply.value, &titles)) else { continue };
            for (&child, title) in tree.children(parent).iter().zip(accepted) {
                titles[child as usize] = tally.checked(title);
            }
        }
    }
    progress.finish();
    Ok(titles)
}

/// The request titling `parent`'s children.
fn request(domain: &str, tree: &TaxonomyTree, parent: u32, named: &dyn Fn(u32) -> String, excerpts: &[Vec<String>]) -> JsonRequest {
    let children = tree.children(parent);
    let lineage = tree.shape().lineage(parent);
    let place = match lineage.len() {
        1 => format!("the whole of {domain}"),
        _ => lineage[1..].iter().map(|&a| named(a)).collect::<Vec<_>>().join(" > "),
    };
    let mut user =
        format!("A taxonomy of {domain} texts. The parent topic is: {place}.\nIt has {} subtopics. Give each a title.\n", children.len());
    for (i, &c) in children.iter().enumerate() {
        let node = tree.node(c);
        user.push_str(&format!("\n## Subtopic {}\nKeywords: {}\nExcerpts:\n", i + 1, node.keywords.join(", ")));
        for e in &excerpts[c as usize] {
            user.push_str(&format!("- {}\n", excerpt(e)));
        }
    }
    user.push_str(&format!("\nReply with {{\"titles\": [...]}}: {} titles, in the order of the subtopics.", children.len()));
    JsonRequest {
        system: format!(
            "You title the knowledge points of a taxonomy of {domain}. A title is a specific noun phrase of at most {MAX_WORDS} \
             words that names what the subtopic's texts are about. Sibling titles differ from each other, and no title repeats \
             its parent topic."
        ),
        user,
        schema: schema(children.len()),
        // A cap, not a length: a real model's titles take a tenth of it.
        max_tokens: 100 * children.len() as u32 + 64,
    }
}

/// `{"titles": [k strings]}`.
fn schema(k: usize) -> Value {
    json!({
        "type": "object",
        "properties": {"titles": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 80}, "minItems": k, "maxItems": k}},
        "required": ["titles"],
        "additionalProperties": false
    })
}

/// The first characters of a passage on one line, cut at a word.
fn excerpt(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= EXCERPT_CHARS {
        return flat;
    }
    let cut: String = flat.chars().take(EXCERPT_CHARS).collect();
    match cut.rfind(' ') {
        Some(i) => format!("{} ...", &cut[..i]),
        None => cut,
    }
}

/// The reply's titles, one per child: the reply must hold exactly as many as there are
/// children; each title is then accepted or rejected on its own.
fn accept(
    tree: &TaxonomyTree,
    parent: u32,
    reply: &Value,
    titles: &[Option<String>],
) -> Result<Vec<Result<String, LlmFailure>>, LlmFailure> {
    let children = tree.children(parent);
    let list = only_array(reply, "titles")?;
    if list.len() != children.len() {
        return Err(LlmFailure::Schema(format!("{} titles for {} subtopics", list.len(), children.len())));
    }
    let lineage = tree.shape().lineage(parent);
    let above: HashSet<String> = lineage[1..]
        .iter()
        .flat_map(|&a| [Some(tree.node(a).label.clone()), titles[a as usize].clone()])
        .flatten()
        .map(|l| key(&l))
        .collect();
    let mut seen = HashSet::new();
    let checked: Vec<Result<String, LlmFailure>> = list
        .iter()
        .map(|t| {
            let title = t.as_str().ok_or_else(|| LlmFailure::Schema("a title is not a string".into()))?;
            let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
            let words = title.split(' ').count();
            if title.is_empty() || words > MAX_WORDS || title.chars().count() > 80 {
                return Err(LlmFailure::Schema(format!("a title of {words} words: `{title}`")));
            }
            if title.chars().any(char::is_control) || !title.chars().any(char::is_alphanumeric) {
                return Err(LlmFailure::Schema(format!("a title with no letters or with control characters: {title:?}")));
            }
            if above.contains(&key(&title)) {
                return Err(LlmFailure::RepeatsParent(title));
            }
            if !seen.insert(key(&title)) {
                return Err(LlmFailure::RepeatsSibling(title));
            }
            Ok(title)
        })
        .collect();
    // A child whose title failed keeps its label: no sibling's title may be that label.
    let kept: HashSet<String> = children.iter().zip(&checked).filter(|(_, t)| t.is_err()).map(|(&c, _)| key(&tree.node(c).label)).collect();
    Ok(checked
        .into_iter()
        .map(|t| match t {
            Ok(title) if kept.contains(&key(&title)) => Err(LlmFailure::RepeatsSibling(title)),
            other => other,
        })
        .collect())
}

/// What two titles are compared by: lower case, letters and digits only.
fn key(title: &str) -> String {
    title.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The nodes with their titles: the title becomes the label (and every path follows it), the
/// label it replaces is kept as `keyword_label`.
pub fn apply(nodes: Vec<TaxonomyNode>, titles: &[Option<String>]) -> Vec<TaxonomyNode> {
    let mut out: Vec<TaxonomyNode> = Vec::with_capacity(nodes.len());
    for mut node in nodes {
        node.keyword_label = Some(node.label.clone());
        if let Some(title) = &titles[node.node_id as usize] {
            node.label = title.clone();
        }
        node.path = match node.parent_id {
            // Parents come first (depth-first ids), so the parent's path is final.
            Some(p) if p != 0 => out[p as usize].path.iter().cloned().chain([node.label.clone()]).collect(),
            Some(_) => vec![node.label.clone()],
            None => Vec::new(),
        };
        out.push(node);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, parent: Option<u32>, depth: u8, label: &str) -> TaxonomyNode {
        TaxonomyNode {
            node_id: id,
            parent_id: parent,
            depth,
            label: label.into(),
            keywords: vec![label.to_lowercase()],
            n_chunks: 1,
            n_tokens: 1,
            ..Default::default()
        }
    }

    fn tree() -> TaxonomyTree {
        TaxonomyTree::new(vec![
            node(0, None, 0, "medicine"),
            node(1, Some(0), 1, "Heart"),
            node(2, Some(1), 2, "Failure"),
            node(3, Some(1), 2, "Rhythm"),
            node(4, Some(0), 1, "Lung"),
        ])
        .expect("tree")
    }

    #[test]
    fn titles_are_checked_one_by_one() {
        let tree = tree();
        let none = vec![None; 5];
        let accepted = accept(&tree, 1, &json!({"titles": ["Heart failure care", "heart!"]}), &none).expect("two titles");
        assert_eq!(accepted[0], Ok("Heart failure care".to_string()));
        assert!(matches!(&accepted[1], Err(LlmFailure::RepeatsParent(_))), "{accepted:?}");
        let twins = accept(&tree, 1, &json!({"titles": ["Pumps", "PUMPS"]}), &none).expect("two titles");
        assert!(matches!(&twins[1], Err(LlmFailure::RepeatsSibling(_))));
        // "Rhythm" keeps its label (its title repeats the parent): its sibling may not take it.
        let taken = accept(&tree, 1, &json!({"titles": ["rhythm", "Heart"]}), &none).expect("two titles");
        assert!(matches!(&taken[0], Err(LlmFailure::RepeatsSibling(_))) && matches!(&taken[1], Err(LlmFailure::RepeatsParent(_))));
        let long = accept(&tree, 1, &json!({"titles": ["one two three four five six seven eight nine", "\u{1}x"]}), &none).expect("two");
        assert!(long.iter().all(|t| matches!(t, Err(LlmFailure::Schema(_)))), "{long:?}");
        assert!(matches!(accept(&tree, 1, &json!({"titles": ["only one"]}), &none), Err(LlmFailure::Schema(_))));
        assert!(matches!(accept(&tree, 1, &json!(["a", "b"]), &none), Err(LlmFailure::Schema(_))));
        // A parent's title counts as much as its keyword label.
        let titled = vec![None, Some("Cardiology".to_string()), None, None, None];
        assert!(matches!(
            &accept(&tree, 1, &json!({"titles": ["Cardiology", "x"]}), &titled).expect("two")[0],
            Err(LlmFailure::RepeatsParent(_))
        ));
    }

    #[test]
    fn applied_titles_rename_the_paths_and_keep_the_keyword_label() {
        let titles = vec![None, Some("Cardiology".to_string()), None, Some("Arrhythmias".to_string()), None];
        let nodes = apply(tree().nodes().to_vec(), &titles);
        assert_eq!(nodes[3].path, ["Cardiology", "Arrhythmias"]);
        assert_eq!(nodes[3].keyword_label.as_deref(), Some("Rhythm"));
        assert_eq!(nodes[2].path, ["Cardiology", "Failure"]);
        assert_eq!((nodes[4].label.as_str(), nodes[4].keyword_label.as_deref()), ("Lung", Some("Lung")));
    }

    #[test]
    fn a_request_lists_every_child_with_its_keywords_and_excerpts() {
        let tree = tree();
        let excerpts = vec![vec![], vec!["The heart pumps blood.".to_string()], vec![], vec![], vec!["x ".repeat(400)]];
        let r = request("medicine", &tree, 0, &|id| tree.node(id).label.clone(), &excerpts);
        assert!(r.user.contains("## Subtopic 1\nKeywords: heart\nExcerpts:\n- The heart pumps blood.\n"), "{}", r.user);
        assert!(r.user.contains("## Subtopic 2") && r.user.contains(" ...\n"), "long excerpts are cut");
        assert_eq!(r.schema["properties"]["titles"]["minItems"], 2);
    }
}
