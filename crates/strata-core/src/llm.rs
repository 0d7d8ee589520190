//! The optional LLM as stages see it: a prompt and a JSON schema in, a JSON value out, or a
//! failure of a named kind. The CLI hands in strata-llm's client (an OpenAI-compatible
//! endpoint behind a reply cache) when the recipe has an `[llm]` section; stage crates depend
//! only on this trait, write the prompts, check the replies and count both in [`LlmCalls`].

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One request: a system message, a user message and the schema the reply must match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonRequest {
    pub system: String,
    pub user: String,
    pub schema: Value,
    /// Most tokens the reply may take.
    pub max_tokens: u32,
}

/// A reply that is JSON (not yet checked against anything but JSON syntax).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonReply {
    pub value: Value,
    /// Taken from the reply cache: no call was made.
    pub cached: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Why a request gave no usable reply. `kind()` names it in the manifest.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmFailure {
    #[error("no reply within the timeout")]
    Timeout,
    #[error("the endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the endpoint answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("the model refused: {0}")]
    Refusal(String),
    #[error("the reply is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON that breaks the schema or the stage's rules (the message says which).
    #[error("the reply breaks the schema: {0}")]
    Schema(String),
    #[error("the title repeats its parent's: {0}")]
    RepeatsParent(String),
    #[error("the title repeats a sibling's: {0}")]
    RepeatsSibling(String),
}

impl LlmFailure {
    pub fn kind(&self) -> &'static str {
        match self {
            LlmFailure::Timeout => "timeout",
            LlmFailure::Unreachable(_) => "unreachable",
            LlmFailure::Http { .. } => "http_error",
            LlmFailure::Refusal(_) => "refusal",
            LlmFailure::InvalidJson(_) => "invalid_json",
            LlmFailure::Schema(_) => "schema",
            LlmFailure::RepeatsParent(_) => "repeats_parent",
            LlmFailure::RepeatsSibling(_) => "repeats_sibling",
        }
    }

    /// A failure of the transport, not of the reply: asking again later may succeed (the
    /// replies themselves are deterministic and cached, so asking again gives the same).
    pub fn is_transient(&self) -> bool {
        match self {
            LlmFailure::Timeout | LlmFailure::Unreachable(_) => true,
            LlmFailure::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// The array under `key` of a reply that must be an object with that one key (the shape every
/// strata request asks for).
pub fn only_array<'a>(reply: &'a Value, key: &str) -> Result<&'a [Value], LlmFailure> {
    reply
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get(key))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| LlmFailure::Schema(format!("expected an object with one key, `{key}`, an array")))
}

/// Why the LLM cannot be used at all (the stage fails with it): the endpoint does not answer.
pub type LlmUnavailable = Box<dyn std::error::Error + Send + Sync>;

pub trait JsonModel: Send + Sync {
    /// The reply to `request`, from the cache when it holds one. Deterministic for a given
    /// model and request (temperature 0, a fixed seed).
    fn complete(&self, request: &JsonRequest) -> Result<JsonReply, LlmFailure>;
    /// Fails with a message naming the endpoint when it does not answer; called once before
    /// the first request that the cache cannot answer.
    fn check_reachable(&self) -> Result<(), LlmUnavailable>;
    /// Whether the cache answers `request` (no call needed).
    fn is_cached(&self, request: &JsonRequest) -> bool;
    /// Everything besides the prompts that the replies depend on (model, parameters, the
    /// structured-output mode): part of the fingerprint of a stage that uses the model.
    fn fingerprint(&self) -> Value;
    /// Most requests in flight at once.
    fn max_concurrency(&self) -> usize;
}

/// What a stage's use of the LLM cost and how it went, recorded in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmCalls {
    /// Requests made by the stage (cached or not).
    pub requests: u64,
    /// Requests the cache answered (no call).
    pub cached: u64,
    /// Prompt and completion tokens of every reply used, as the server counted them (a cached
    /// reply counts the tokens its call took).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Requests that gave nothing usable, by kind (`timeout`, `invalid_json`, ...); a title
    /// rejected for repeating its parent counts one per title.
    pub failures: BTreeMap<String, u64>,
    /// Failures that a later run may not repeat (timeouts, an unreachable endpoint, HTTP
    /// 429/5xx): while any remain, the stage reruns on the next run, its replies from the cache.
    pub transient_failures: u64,
}

/// [`LlmCalls`] counted from many threads.
#[derive(Debug, Default)]
pub struct LlmTally(Mutex<LlmCalls>);

impl LlmTally {
    pub fn reply(&self, reply: &JsonReply) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        c.requests += 1;
        c.cached += reply.cached as u64;
        c.prompt_tokens += reply.prompt_tokens;
        c.completion_tokens += reply.completion_tokens;
    }

    /// A failed request, or (`after_reply`) a reply already counted that a check rejected.
    pub fn failure(&self, failure: &LlmFailure, after_reply: bool) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        c.requests += !after_reply as u64;
        *c.failures.entry(failure.kind().to_string()).or_default() += 1;
        c.transient_failures += failure.is_transient() as u64;
    }

    /// What a stage's check of a reply (or of a part of one) gave: the value, or nothing with
    /// the failure counted against the reply.
    pub fn checked<T>(&self, check: Result<T, LlmFailure>) -> Option<T> {
        check.inspect_err(|f| self.failure(f, true)).ok()
    }

    pub fn finish(self) -> LlmCalls {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends `requests` with at most the model's `max_concurrency` in flight, advancing `progress`
/// once per request; the replies come back in request order. Fails only when some request
/// needs a call and the endpoint does not answer at all; a request that fails alone is an
/// `Err` in its place, counted in `tally` like every reply.
pub fn complete_all(
    model: &dyn JsonModel,
    requests: &[JsonRequest],
    progress: &dyn crate::Progress,
    tally: &LlmTally,
) -> Result<Vec<Result<JsonReply, LlmFailure>>, LlmUnavailable> {
    if requests.iter().any(|r| !model.is_cached(r)) {
        model.check_reachable()?;
    }
    // A pool of its own: its threads wait on the server, not on the CPU.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(model.max_concurrency().max(1)).build()?;
    Ok(pool.install(|| {
        requests
            .par_iter()
            .map(|request| {
                let reply = model.complete(request);
                match &reply {
                    Ok(r) => tally.reply(r),
                    Err(f) => tally.failure(f, false),
                }
                progress.advance(1);
                reply
            })
            .collect()
    }))
}
