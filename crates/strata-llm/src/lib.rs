//! strata-llm: the optional LLM of a recipe's `[llm]` section, an OpenAI-compatible chat
//! endpoint (llama.cpp's server, vLLM, Ollama, a hosted API) behind a reply cache.
//!
//! It owns the settings, the request body (temperature 0, the run's seed, the schema in the
//! server's structured-output mode), retries of failed transport with a bounded count, the
//! reply cache (one file per reply, named by the hash of model, messages and parameters) and
//! the mapping of every way a call can fail to [`LlmFailure`]. It implements strata-core's
//! [`JsonModel`]; the stages write the prompts and check the replies.

mod cache;

use cache::{CachedReply, ReplyCache};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use strata_core::llm::{JsonModel, JsonReply, JsonRequest, LlmFailure, LlmUnavailable};

/// Seconds the endpoint has to answer at all (`check_reachable`), whatever `timeout_s` is.
const REACHABLE_TIMEOUT_S: u64 = 10;

/// How the server is asked for JSON that matches the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// OpenAI's `response_format: {"type": "json_schema", ...}` (llama.cpp's `llama-server`,
    /// vLLM, Ollama, OpenAI).
    JsonSchema,
    /// `response_format: {"type": "json_object", "schema": ...}` (llama-cpp-python's server,
    /// which refuses the former).
    JsonObject,
    /// No constraint: the schema is only described in the prompt (every reply is still checked).
    Prompt,
}

/// The `[llm]` section of a recipe. Off when the section is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// The server's OpenAI-compatible base URL, e.g. `http://127.0.0.1:8080/v1`.
    pub endpoint: String,
    /// The model name the server serves.
    pub model: String,
    /// Most requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Seconds one call may take, reply included.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Further tries of a call that failed in transit (timeout, refused connection, HTTP 429
    /// or 5xx), after 1 s, 2 s, 4 s, ...
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// The environment variable holding the API key, sent as a bearer token when set (never
    /// written to any output).
    #[serde(default = "default_key_env")]
    pub api_key_env: String,
    #[serde(default = "default_structured")]
    pub structured_output: StructuredOutput,
    /// Title every taxonomy node (the keyword label is kept beside the title).
    #[serde(default = "default_true")]
    pub titles: bool,
    /// Share of the selected passages (a seeded draw) that get LLM question answering in
    /// `ssft_qa`; 0 turns it off.
    #[serde(default = "default_share")]
    pub qa_share: f64,
    /// Questions asked per passage.
    #[serde(default = "default_questions")]
    pub qa_per_passage: usize,
}

fn default_concurrency() -> usize {
    4
}
fn default_timeout() -> f64 {
    120.0
}
fn default_retries() -> u32 {
    2
}
fn default_key_env() -> String {
    "STRATA_LLM_API_KEY".into()
}
fn default_structured() -> StructuredOutput {
    StructuredOutput::JsonSchema
}
fn default_true() -> bool {
    true
}
fn default_share() -> f64 {
    1.0
}
fn default_questions() -> usize {
    2
}

impl LlmConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!("llm.endpoint = `{}` must be an http:// or https:// URL", self.endpoint));
        }
        if self.model.trim().is_empty() {
            return Err("llm.model is empty: name the model the server serves".into());
        }
        if self.max_concurrency == 0 || self.max_concurrency > 256 {
            return Err(format!("llm.max_concurrency = {} must be between 1 and 256", self.max_concurrency));
        }
        if !(self.timeout_s > 0.0 && self.timeout_s <= 3600.0) || self.max_retries > 10 {
            return Err(format!(
                "llm.timeout_s = {} must be in (0, 3600] and llm.max_retries = {} at most 10",
                self.timeout_s, self.max_retries
            ));
        }
        if !(0.0..=1.0).contains(&self.qa_share) || !(1..=10).contains(&self.qa_per_passage) {
            return Err(format!(
                "llm.qa_share = {} must be in [0, 1] and llm.qa_per_passage = {} between 1 and 10",
                self.qa_share, self.qa_per_passage
            ));
        }
        Ok(())
    }
}

/// The endpoint's client: requests, retries and the reply cache.
pub struct LlmClient {
    config: LlmConfig,
    api_key: Option<String>,
    seed: u64,
    agent: ureq::Agent,
    cache: ReplyCache,
}

impl LlmClient {
    /// A client for `config`, sending `seed` with every request and caching replies under
    /// `cache_dir`. `api_key` is the value of `config.api_key_env`, read by the caller.
    pub fn new(config: LlmConfig, api_key: Option<String>, seed: u64, cache_dir: PathBuf) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs_f64(config.timeout_s)))
            .http_status_as_error(false)
            .build()
            .into();
        Self { config, api_key, seed, agent, cache: ReplyCache::new(cache_dir) }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.endpoint.trim_end_matches('/'))
    }

    /// The chat-completions body: everything the reply depends on, hence the cache key.
    fn body(&self, request: &JsonRequest) -> Value {
        let system = format!(
            "{}\n\nReply with one JSON object and nothing else. It must match this JSON schema:\n{}",
            request.system, request.schema
        );
        let mut body = json!({
            "model": self.config.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": request.user}],
            "temperature": 0,
            "seed": self.seed,
            "max_tokens": request.max_tokens,
        });
        match self.config.structured_output {
            StructuredOutput::JsonSchema => {
                body["response_format"] =
                    json!({"type": "json_schema", "json_schema": {"name": "reply", "strict": true, "schema": request.schema}});
            }
            StructuredOutput::JsonObject => body["response_format"] = json!({"type": "json_object", "schema": request.schema}),
            StructuredOutput::Prompt => {}
        }
        body
    }

    /// One call, tried again after a transport failure up to `max_retries` times.
    fn call(&self, body: &Value) -> Result<CachedReply, LlmFailure> {
        let mut attempt = 0;
        loop {
            match self.call_once(body) {
                Err(f) if f.is_transient() && attempt < self.config.max_retries => {
                    tracing::debug!("LLM call failed ({f}); trying again");
                    std::thread::sleep(Duration::from_secs(1 << attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn call_once(&self, body: &Value) -> Result<CachedReply, LlmFailure> {
        let mut post = self.agent.post(self.url("chat/completions"));
        if let Some(key) = &self.api_key {
            post = post.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = post.send_json(body).map_err(transport)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(transport)?;
        if status != 200 {
            return Err(LlmFailure::Http { status, body: text.chars().take(300).collect() });
        }
        CachedReply::from_completion(&text)
    }
}

/// A failure below HTTP: no answer in time, or none at all.
fn transport(e: ureq::Error) -> LlmFailure {
    match e {
        ureq::Error::Timeout(_) => LlmFailure::Timeout,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => LlmFailure::Timeout,
        other => LlmFailure::Unreachable(other.to_string()),
    }
}

impl JsonModel for LlmClient {
    fn complete(&self, request: &JsonRequest) -> Result<JsonReply, LlmFailure> {
        let body = self.body(request);
        let (reply, cached) = match self.cache.get(&body) {
            Some(reply) => (reply, true),
            None => {
                let reply = self.call(&body)?;
                // Replies are kept whatever they hold: the same request gives the same reply.
                if let Err(e) = self.cache.put(&body, &reply) {
                    tracing::warn!("failed to cache an LLM reply: {e}");
                }
                (reply, false)
            }
        };
        let value = reply.json()?;
        Ok(JsonReply { value, cached, prompt_tokens: reply.prompt_tokens, completion_tokens: reply.completion_tokens })
    }

    fn check_reachable(&self) -> Result<(), LlmUnavailable> {
        // Any HTTP answer will do (a server may not list models); no answer at all will not.
        // Its own timeout: a server may list its models fast and still need long to reply.
        let url = self.url("models");
        match self.agent.get(&url).config().timeout_global(Some(Duration::from_secs(REACHABLE_TIMEOUT_S))).build().call() {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "the LLM endpoint `{}` ([llm] endpoint) does not answer ({e}); start the server, or remove the recipe's [llm] section",
                self.config.endpoint
            )
            .into()),
        }
    }

    fn is_cached(&self, request: &JsonRequest) -> bool {
        self.cache.contains(&self.body(request))
    }

    fn fingerprint(&self) -> Value {
        // The endpoint is left out: the same model behind another address gives the same replies.
        json!({"model": self.config.model, "seed": self.seed, "structured_output": self.config.structured_output})
    }

    fn max_concurrency(&self) -> usize {
        self.config.max_concurrency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(structured_output: StructuredOutput) -> LlmConfig {
        toml_like(json!({"endpoint": "http://127.0.0.1:9/v1", "model": "m", "structured_output": structured_output}))
    }

    fn toml_like(v: Value) -> LlmConfig {
        serde_json::from_value(v).expect("config")
    }

    #[test]
    fn defaults_and_checks() {
        let c = config(StructuredOutput::JsonSchema);
        assert_eq!((c.max_concurrency, c.max_retries, c.titles, c.qa_per_passage), (4, 2, true, 2));
        assert!(c.validate().is_ok());
        assert!(LlmConfig { endpoint: "127.0.0.1:8080".into(), ..c.clone() }.validate().is_err());
        assert!(LlmConfig { qa_share: 1.5, ..c }.validate().is_err());
    }

    #[test]
    fn each_structured_output_mode_asks_in_its_own_way() {
        let request = JsonRequest { system: "s".into(), user: "u".into(), schema: json!({"type": "object"}), max_tokens: 9 };
        let dir = tempfile::tempdir().expect("tempdir");
        let body = |mode| LlmClient::new(config(mode), None, 7, dir.path().to_path_buf()).body(&request);
        let schema = body(StructuredOutput::JsonSchema);
        assert_eq!(schema["response_format"]["type"], "json_schema");
        assert_eq!(schema["response_format"]["json_schema"]["schema"], json!({"type": "object"}));
        assert_eq!((schema["temperature"].clone(), schema["seed"].clone()), (json!(0), json!(7)));
        assert_eq!(body(StructuredOutput::JsonObject)["response_format"], json!({"type": "json_object", "schema": {"type": "object"}}));
        let prompt = body(StructuredOutput::Prompt);
        assert!(prompt.get("response_format").is_none());
        assert!(prompt["messages"][0]["content"].as_str().is_some_and(|s| s.contains(r#"{"type":"object"}"#)));
    }

    #[test]
    fn a_closed_port_is_unreachable_and_says_which_endpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let client = LlmClient::new(LlmConfig { max_retries: 0, ..config(StructuredOutput::JsonSchema) }, None, 1, dir.path().into());
        let err = client.check_reachable().expect_err("nothing listens on port 9");
        assert!(err.to_string().contains("http://127.0.0.1:9/v1"), "{err}");
        let request = JsonRequest { system: "s".into(), user: "u".into(), schema: json!({}), max_tokens: 9 };
        assert!(matches!(client.complete(&request), Err(LlmFailure::Unreachable(_))));
        assert!(!client.is_cached(&request), "a failed call is not cached");
    }
}
