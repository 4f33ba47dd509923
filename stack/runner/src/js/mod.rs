//! The JavaScript engine: QuickJS through rquickjs.
//!
//! Every engine is one QuickJS `Runtime` and `Context` for one deployed worker version (no shared
//! globals, env or secrets between workers). HTTP requests run on the tokio thread that took the
//! request, in that thread's own engine for the worker (created on first use, so a worker may have
//! one instance per thread, as Workers have one per isolate): no hand-off between threads. Its
//! blocking calls (`fetch`, `env.DB`, `env.QUEUE`, timers) run under `block_in_place`, so the
//! runtime moves its other tasks to another thread meanwhile. Cron and queue invocations go to the
//! worker's own OS thread through a channel. Limits: CPU time per invocation through the interrupt
//! handler, memory through the runtime's memory limit. An engine that hits a limit is replaced for
//! the next invocation; other workers are untouched. A request crosses into JavaScript as plain
//! arguments and its response comes back as an array, without JSON on the way (see
//! `engine::run_fetch`).
//!
//! Rooms: `handle` (admission, the worker's thread), `local` (each request thread's engines),
//! `engine` (one runtime: limits, dispatch), `host` (what the script may call), `blocking`
//! (blocking calls off the async threads, outside the CPU time).

mod blocking;
mod engine;
mod handle;
mod host;
mod local;

use std::sync::Arc;
use std::time::Duration;

use rquickjs::CaughtError;
use serde::Serialize;

pub use handle::WorkerHandle;

/// What workers may reach outside their sandbox: the database (for `env.QUEUE`), driven from
/// the engine thread through the tokio runtime's handle (the engine thread blocks, tokio's
/// workers do not).
#[derive(Clone)]
pub struct Services {
    pub pool: deadpool_postgres::Pool,
    pub handle: tokio::runtime::Handle,
    pub fetch: crate::fetch::FetchPolicy,
    /// postgate's gateway for `env.DB` (None when the runner has no token pepper).
    pub gateway: Option<Arc<postgate::Gateway>>,
    /// Where workflow step durations are counted (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// What is deployed: one version of one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerDef {
    pub name: String,
    pub version: i32,
    pub source: String,
    pub routes: Vec<String>,
    pub queues: Vec<String>,
    pub vars: serde_json::Value,
    /// Secrets on `env`, beside the vars.
    pub secrets: std::collections::BTreeMap<String, crate::secrets::Secret>,
    /// The worker's own postgate token: `env.DB` exists only with one.
    pub db_token: Option<crate::secrets::Secret>,
    pub cpu_ms: u64,
    pub memory_mb: u64,
    /// Wall time of one invocation.
    pub wall: Duration,
    /// Largest request body accepted (HTTP 413 past it).
    pub body_bytes: usize,
    /// Invocations admitted at once on this replica (queued or running); more get a 503.
    pub concurrency: usize,
    /// Workflow bindings on `env`: binding name -> the exported class (also the workflow's name).
    pub workflows: std::collections::BTreeMap<String, String>,
}

impl WorkerDef {
    /// Where `env.QUEUE.send(body)` goes without `{ queue }`: the worker's own consumed queue when
    /// it consumes exactly one (so what it sends is taken by a consumer), else the queue named
    /// after the worker.
    pub fn default_send_queue(&self) -> &str {
        match self.queues.as_slice() {
            [only] => only,
            _ => &self.name,
        }
    }
}

/// Why an invocation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum InvokeError {
    /// The worker went over its CPU or memory limit (HTTP 503).
    #[error("worker {worker} exceeded its {limit} limit")]
    Limit { worker: String, limit: &'static str },
    /// The script threw or returned something unusable (HTTP 500).
    #[error("worker {worker} failed: {message}")]
    Script { worker: String, message: String },
    /// The worker's thread is gone or did not answer in time (HTTP 503).
    #[error("worker {worker} is unavailable: {reason}")]
    Unavailable { worker: String, reason: String },
}

/// An HTTP request as handed to a worker.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    /// `name\0value\0…`, names in lower case (HTTP forbids NUL in both): the form the worker's
    /// `Headers` is built from, only if the handler reads `request.headers`.
    pub headers: String,
    pub body: Option<crate::body::Body>,
    pub request_id: String,
}

/// A worker's HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A message of a queue batch.
#[derive(Debug, Clone, Serialize)]
pub struct QueueMessage {
    pub id: i64,
    pub body: serde_json::Value,
    pub attempts: i32,
}

/// The default of concurrent invocations one worker may have queued on its engine per replica.
pub const MAX_INFLIGHT: usize = 256;

/// A caught JavaScript error as text: its message and stack.
fn caught(e: CaughtError<'_>) -> String {
    match e {
        CaughtError::Exception(ex) => {
            let msg = ex.message().unwrap_or_default();
            match ex.stack() {
                Some(s) if !s.is_empty() => format!("{msg}\n{s}"),
                _ => msg,
            }
        }
        CaughtError::Value(v) => format!("uncaught value: {v:?}"),
        CaughtError::Error(rquickjs::Error::WouldBlock) => {
            "the worker's promise never settled".to_string()
        }
        CaughtError::Error(e) => e.to_string(),
    }
}
