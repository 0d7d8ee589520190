//! `strata serve`: a run's search over HTTP JSON. `POST /search` takes
//! `{"query", "k", "mode", "under"}` and answers `{"mode", "k", "hits": [...]}`; `GET /health`
//! answers `{"status": "ok", ...}`. Searches run on blocking threads, at most
//! `--max-concurrency` at once (the rest wait their turn); bodies over 16 KiB are refused;
//! bad input gets a 4xx with `{"error": ...}`; SIGTERM or Ctrl-C finishes the requests in
//! flight, then exits. Loopback only unless `--allow-remote`.

use super::search::Engine;
use crate::cli::ServeArgs;
use crate::UsageError;
use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use strata_index::{IndexError, Mode};
use tokio::sync::Semaphore;

/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024;
/// Largest query, in characters, and most hits per request.
const MAX_QUERY_CHARS: usize = 2_000;
const MAX_K: usize = 100;

pub fn serve(args: &ServeArgs) -> Result<()> {
    let addr: SocketAddr = args.addr.parse().map_err(|e| UsageError(format!("--addr `{}`: {e}", args.addr)))?;
    if !addr.ip().is_loopback() && !args.allow_remote {
        return Err(UsageError(format!("--addr {addr} is not a loopback address; pass --allow-remote to listen on it")).into());
    }
    if args.max_concurrency == 0 {
        return Err(UsageError("--max-concurrency must be at least 1".into()).into());
    }
    let engine = Arc::new(Engine::open(&args.run, args.threads)?);
    // Load the model now, so the first request does not wait for it.
    engine.embed("warm up", Mode::Dense)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the server's runtime")?;
    runtime.block_on(async move {
        let state = Served { engine, permits: Arc::new(Semaphore::new(args.max_concurrency)), run: args.run.display().to_string() };
        let app = Router::new()
            .route("/health", get(health))
            .route("/search", post(search))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("failed to listen on {addr}"))?;
        outln!("listening on http://{}", listener.local_addr()?)?;
        axum::serve(listener, app).with_graceful_shutdown(shutdown()).await.context("serving")?;
        outln!("stopped")?;
        Ok(())
    })
}

#[derive(Clone)]
struct Served {
    engine: Arc<Engine>,
    permits: Arc<Semaphore>,
    run: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    query: String,
    #[serde(default = "default_k")]
    k: usize,
    #[serde(default = "default_mode")]
    mode: String,
    #[serde(default)]
    under: Option<String>,
}

fn default_k() -> usize {
    10
}

fn default_mode() -> String {
    "hybrid".into()
}

async fn health(State(s): State<Served>) -> Response {
    let meta = &s.engine.retriever.dense.meta;
    Json(json!({"status": "ok", "run": s.run, "chunks": meta.rows, "model": meta.model, "variant": meta.variant})).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn search(State(s): State<Served>, body: Result<Bytes, BytesRejection>) -> Response {
    // A body over the limit (413) or one that cannot be read answers in JSON like the rest.
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let request: SearchRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed request: {e}; expected {{\"query\": \"...\", \"k\": 10, \"mode\": \"hybrid\", \"under\": \"/Topic\"}}"),
            )
        }
    };
    let query = request.query.trim().to_string();
    if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
        return error(StatusCode::BAD_REQUEST, format!("query must hold 1 to {MAX_QUERY_CHARS} characters"));
    }
    if !(1..=MAX_K).contains(&request.k) {
        return error(StatusCode::BAD_REQUEST, format!("k = {} is out of range 1..={MAX_K}", request.k));
    }
    let mode: Mode = match request.mode.parse() {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Ok(_permit) = s.permits.clone().acquire_owned().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let engine = s.engine.clone();
    let under = request.under.clone();
    let k = request.k;
    let done = tokio::task::spawn_blocking(move || engine.search(&query, mode, under.as_deref(), k)).await;
    match done {
        Ok(Ok(hits)) => Json(json!({"mode": mode.as_str(), "k": k, "hits": hits})).into_response(),
        Ok(Err(e)) => match e.downcast_ref::<IndexError>() {
            Some(IndexError::UnknownSubtree(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
            _ => {
                tracing::error!("search failed: {e:#}");
                error(StatusCode::INTERNAL_SERVER_ERROR, format!("search failed: {e}"))
            }
        },
        Err(e) => {
            tracing::error!("search task failed: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "search failed")
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
