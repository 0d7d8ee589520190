//! The reply cache: one JSON file per reply, named by the SHA-256 of the request body (model,
//! messages, temperature, seed, token limit, response format), written whole or not at all.
//! A rerun, or a run after a crash, finds every reply that came before and calls only for the
//! rest; two runs of the same requests give the same replies, so the same files.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use strata_core::llm::LlmFailure;

/// What the cache keeps of a chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedReply {
    pub content: Option<String>,
    pub refusal: Option<String>,
    pub finish_reason: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl CachedReply {
    /// The parts of an OpenAI chat-completion response that strata uses.
    pub fn from_completion(text: &str) -> Result<Self, LlmFailure> {
        let completion: Completion = serde_json::from_str(text)
            .map_err(|e| LlmFailure::InvalidJson(format!("the endpoint's answer is not a chat completion ({e})")))?;
        let Some(choice) = completion.choices.into_iter().next() else {
            return Err(LlmFailure::InvalidJson("the chat completion has no choices".into()));
        };
        let usage = completion.usage.unwrap_or(Usage { prompt_tokens: 0, completion_tokens: 0 });
        Ok(Self {
            content: choice.message.content,
            refusal: choice.message.refusal,
            finish_reason: choice.finish_reason,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        })
    }

    /// The reply's JSON: a refusal, a reply cut off at the token limit or text that is not JSON
    /// are failures. A fenced block (```json ... ```) is read as its content.
    pub fn json(&self) -> Result<Value, LlmFailure> {
        if let Some(refusal) = self.refusal.as_deref().filter(|r| !r.is_empty()) {
            return Err(LlmFailure::Refusal(refusal.chars().take(200).collect()));
        }
        if self.finish_reason.as_deref() == Some("content_filter") {
            return Err(LlmFailure::Refusal("the server's content filter stopped the reply".into()));
        }
        if self.finish_reason.as_deref() == Some("length") {
            return Err(LlmFailure::InvalidJson("the reply was cut off at the token limit".into()));
        }
        let content = self.content.as_deref().unwrap_or("").trim();
        let unfenced =
            content.strip_prefix("```json").or_else(|| content.strip_prefix("```")).and_then(|c| c.strip_suffix("```")).unwrap_or(content);
        serde_json::from_str(unfenced.trim()).map_err(|e| {
            let start: String = content.chars().take(80).collect();
            LlmFailure::InvalidJson(format!("{e}; the reply starts `{start}`"))
        })
    }
}

pub struct ReplyCache {
    dir: PathBuf,
}

impl ReplyCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, body: &Value) -> PathBuf {
        let key = strata_core::hash::sha256_hex(body.to_string().as_bytes());
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    /// The cached reply to `body`; a file that cannot be read as one counts as absent.
    pub fn get(&self, body: &Value) -> Option<CachedReply> {
        let bytes = std::fs::read(self.path(body)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether a reply to `body` is cached (its file exists; it is read when used).
    pub fn contains(&self, body: &Value) -> bool {
        self.path(body).is_file()
    }

    pub fn put(&self, body: &Value, reply: &CachedReply) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(reply).map_err(std::io::Error::other)?;
        strata_core::stage::write_atomically(&self.path(body), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_completion_is_read_and_its_json_checked() {
        let text = r#"{"choices":[{"message":{"role":"assistant","content":"```json\n{\"a\": 1}\n```"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
        let reply = CachedReply::from_completion(text).expect("completion");
        assert_eq!((reply.prompt_tokens, reply.completion_tokens), (12, 5));
        assert_eq!(reply.json(), Ok(json!({"a": 1})));
        let cut = CachedReply { finish_reason: Some("length".into()), ..reply.clone() };
        assert!(matches!(cut.json(), Err(LlmFailure::InvalidJson(_))));
        let refused = CachedReply { refusal: Some("no".into()), ..reply.clone() };
        assert!(matches!(refused.json(), Err(LlmFailure::Refusal(_))));
        let prose = CachedReply { content: Some("Sure! Here it is".into()), ..reply };
        assert!(matches!(prose.json(), Err(LlmFailure::InvalidJson(m)) if m.contains("Sure!")));
        assert!(CachedReply::from_completion("<html>").is_err());
    }

    #[test]
    fn replies_are_found_by_their_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ReplyCache::new(dir.path().join("llm"));
        let reply = CachedReply { content: Some("{}".into()), refusal: None, finish_reason: None, prompt_tokens: 1, completion_tokens: 2 };
        let (a, b) = (json!({"model": "m", "seed": 1}), json!({"model": "m", "seed": 2}));
        assert!(!cache.contains(&a));
        cache.put(&a, &reply).expect("put");
        assert_eq!(cache.get(&a), Some(reply));
        assert!(!cache.contains(&b), "another seed is another request");
    }
}
