//! StructTuning's question-answer SSFT written by the recipe's LLM, for corpora without a
//! questions file: per selected passage (a seeded share of them), questions answerable from
//! the passage, a short answer and an explanation that walks from the passage's place in the
//! taxonomy to the answer. The samples take the layout of the questions-file route
//! (`questions::layout`); every reply is checked item by item, and a rejected item is counted
//! and left out.

use serde_json::{json, Value};
use std::sync::Arc;
use strata_core::llm::{only_array, JsonModel, JsonRequest, LlmFailure};

/// Bumped when the prompt or the checks change (part of the stage's fingerprint).
pub const PROMPT_VERSION: u32 = 1;

// Longest fields, in characters. The schema states them, so a grammar-constrained server stops
// there; llama.cpp's grammar compiler refuses much longer bounded strings.
const MAX_QUESTION: usize = 200;
const MAX_ANSWER: usize = 400;
const MAX_EXPLANATION: usize = 800;
/// Characters of the passage sent (a passage of 1,024 target tokens is about 4,500).
const MAX_PASSAGE: usize = 12_000;

/// The LLM route of `ssft_qa`, as the recipe sets it.
#[derive(Clone)]
pub struct LlmQa {
    pub model: Arc<dyn JsonModel>,
    /// Share of the selected passages asked about (a seeded draw).
    pub share: f64,
    /// Questions per passage.
    pub per_passage: usize,
}

/// One question with its answer and explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub question: String,
    pub answer: String,
    pub explanation: String,
}

/// Whether the seeded draw asks about passage `id`: the same passages for a seed and share,
/// whichever other passages are selected.
pub fn drawn(seed: u64, id: &str, share: f64) -> bool {
    let hash = strata_core::hash::sha256_hex(format!("llm_qa/{seed}/{id}").as_bytes());
    let x = u64::from_str_radix(&hash[..16], 16).unwrap_or(0);
    (x as f64) < share * u64::MAX as f64
}

/// The request for one passage, with its place in the taxonomy and its section.
pub fn request(domain: &str, path: &[String], section: &[String], passage: &str, n: usize) -> JsonRequest {
    let passage: String = passage.chars().take(MAX_PASSAGE).collect();
    let section = match section.last() {
        Some(h) => format!("Section of its source: {h}\n"),
        None => String::new(),
    };
    JsonRequest {
        system: format!(
            "You write study questions about {domain} for training a language model. Each question can be answered from the \
             passage alone and makes sense without it. The answer is short: one or two sentences. The explanation (two to four \
             sentences) starts from where the passage sits in the knowledge structure and leads to the answer."
        ),
        user: format!(
            "Knowledge structure: {domain} > {}\n{section}\nPassage:\n{passage}\n\nWrite {n} different questions, each with its \
             answer and explanation: one object per question in `items`, with `question`, `answer` and `explanation`.",
            path.join(" > ")
        ),
        schema: schema(n),
        // A cap, not a length: a real model's items take a fraction of it.
        max_tokens: 1500 * n as u32 + 64,
    }
}

fn schema(n: usize) -> Value {
    let text = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max});
    json!({
        "type": "object",
        "properties": {"items": {
            "type": "array",
            "minItems": n,
            "maxItems": n,
            "items": {
                "type": "object",
                "properties": {"question": text(MAX_QUESTION), "answer": text(MAX_ANSWER), "explanation": text(MAX_EXPLANATION)},
                "required": ["question", "answer", "explanation"],
                "additionalProperties": false
            }
        }},
        "required": ["items"],
        "additionalProperties": false
    })
}

/// The reply's items, each accepted or rejected on its own; a reply that is not the schema's
/// object at all is one failure.
pub fn accept(reply: &Value, n: usize) -> Result<Vec<Result<Item, LlmFailure>>, LlmFailure> {
    let items = only_array(reply, "items")?;
    if items.len() != n {
        return Err(LlmFailure::Schema(format!("{} items where {n} were asked for", items.len())));
    }
    Ok(items.iter().map(item).collect())
}

fn item(value: &Value) -> Result<Item, LlmFailure> {
    let object = value
        .as_object()
        .filter(|o| o.len() == 3)
        .ok_or_else(|| LlmFailure::Schema("an item is not an object of exactly `question`, `answer` and `explanation`".into()))?;
    let field = |name: &str, max: usize| -> Result<String, LlmFailure> {
        let text = object.get(name).and_then(Value::as_str).ok_or_else(|| LlmFailure::Schema(format!("`{name}` is missing")))?;
        // Whitespace of any kind (a tab, a form feed, a line break) is one space.
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || text.chars().count() > max {
            return Err(LlmFailure::Schema(format!("`{name}` has {} characters (1 to {max})", text.chars().count())));
        }
        if text.chars().any(char::is_control) || !text.chars().any(char::is_alphanumeric) {
            return Err(LlmFailure::Schema(format!("`{name}` has no letters or has control characters: {:?}", short(&text))));
        }
        Ok(text)
    };
    Ok(Item {
        question: field("question", MAX_QUESTION)?,
        answer: field("answer", MAX_ANSWER)?,
        explanation: field("explanation", MAX_EXPLANATION)?,
    })
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_checked_one_by_one() {
        let good = json!({"question": "What treats it?", "answer": "Diuretics.", "explanation": "Under Heart failure, ..."});
        let empty = json!({"question": " ", "answer": "a", "explanation": "b"});
        let extra = json!({"question": "q?", "answer": "a", "explanation": "b", "note": "x"});
        let items = accept(&json!({"items": [good, empty, extra]}), 3).expect("three items");
        assert_eq!(items[0].as_ref().map(|i| i.answer.as_str()), Ok("Diuretics."));
        assert!(matches!(&items[1], Err(LlmFailure::Schema(m)) if m.contains("question")));
        assert!(matches!(&items[2], Err(LlmFailure::Schema(_))));
        assert!(matches!(accept(&json!({"items": []}), 2), Err(LlmFailure::Schema(_))));
        assert!(matches!(accept(&json!({"questions": []}), 2), Err(LlmFailure::Schema(_))));
    }

    #[test]
    fn the_draw_is_seeded_and_follows_the_share() {
        let ids: Vec<String> = (0..2000).map(|i| format!("doc{i}#p0")).collect();
        let count = |seed, share| ids.iter().filter(|id| drawn(seed, id, share)).count();
        assert_eq!(count(1, 1.0), 2000);
        assert_eq!(count(1, 0.0), 0);
        let quarter = count(1, 0.25);
        assert!((400..600).contains(&quarter), "{quarter}");
        assert_eq!(quarter, count(1, 0.25), "the same draw every time");
        assert_ne!(ids.iter().map(|id| drawn(1, id, 0.5)).collect::<Vec<_>>(), ids.iter().map(|id| drawn(2, id, 0.5)).collect::<Vec<_>>());
    }

    #[test]
    fn the_request_names_the_place_and_asks_for_n_items() {
        let r = request("medicine", &["Cardiology".into(), "Heart failure".into()], &["Treatment".into()], "Diuretics help.", 3);
        assert!(r.user.starts_with("Knowledge structure: medicine > Cardiology > Heart failure\nSection of its source: Treatment\n"));
        assert!(r.user.contains("Passage:\nDiuretics help."));
        assert_eq!(r.schema["properties"]["items"]["maxItems"], 3);
    }
}
