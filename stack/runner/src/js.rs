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
//! arguments and its response comes back as an array, without JSON on the way (see `run_fetch`).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rquickjs::function::Opt;
use rquickjs::{
    CatchResultExt, CaughtError, Context, Function, Module, Object, Persistent, Promise, Runtime,
};
use serde::Serialize;
use serde_json::json;
use tokio::sync::oneshot;
use tracing::Instrument as _;

const PRELUDE: &str = include_str!("prelude.js");

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

enum Task {
    Fetch(
        HttpRequest,
        oneshot::Sender<Result<HttpResponse, InvokeError>>,
    ),
    Scheduled(serde_json::Value, oneshot::Sender<Result<(), InvokeError>>),
    /// Returns the ids the worker asked to retry.
    Queue(
        String,
        Vec<QueueMessage>,
        oneshot::Sender<Result<Vec<String>, InvokeError>>,
    ),
}

/// A running worker version: a thread with its engine, fed through a channel.
pub struct WorkerHandle {
    pub def: Arc<WorkerDef>,
    /// Names this handle's engines on the request threads.
    id: u64,
    services: Option<Services>,
    tx: Mutex<mpsc::Sender<Task>>,
    /// Invocations queued or running; past `def.concurrency` new ones get a 503 at once.
    inflight: std::sync::atomic::AtomicUsize,
}

/// The default of concurrent invocations one worker may have queued on its engine per replica.
pub const MAX_INFLIGHT: usize = 256;

struct InflightGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        LIVE_HANDLES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        RETIRED.fetch_add(1, Ordering::SeqCst);
    }
}

impl WorkerHandle {
    /// Start the worker's thread. The module is compiled on the thread, lazily.
    pub fn spawn(def: WorkerDef, services: Option<Services>) -> std::io::Result<Arc<WorkerHandle>> {
        let wall = def.wall;
        let def = Arc::new(def);
        let (tx, rx) = mpsc::channel();
        let d = def.clone();
        let thread_services = services.clone();
        std::thread::Builder::new()
            .name(format!("js-{}", def.name))
            .stack_size(8 << 20)
            .spawn(move || worker_thread(d, wall, thread_services, rx))?;
        let id = NEXT_HANDLE.fetch_add(1, Ordering::SeqCst);
        LIVE_HANDLES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
        Ok(Arc::new(WorkerHandle {
            def,
            id,
            services,
            tx: Mutex::new(tx),
            inflight: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    fn admit(&self) -> Result<InflightGuard<'_>, InvokeError> {
        if self.inflight.fetch_add(1, Ordering::SeqCst) >= self.def.concurrency.max(1) {
            self.inflight.fetch_sub(1, Ordering::SeqCst);
            return Err(InvokeError::Limit {
                worker: self.def.name.clone(),
                limit: "concurrent invocations",
            });
        }
        Ok(InflightGuard(&self.inflight))
    }

    fn send(&self, task: Task) -> Result<(), InvokeError> {
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(task)
            .map_err(|_| self.unavailable("its engine thread stopped"))
    }

    fn unavailable(&self, reason: &str) -> InvokeError {
        InvokeError::Unavailable {
            worker: self.def.name.clone(),
            reason: reason.to_string(),
        }
    }

    async fn wait<T>(
        &self,
        rx: oneshot::Receiver<Result<T, InvokeError>>,
    ) -> Result<T, InvokeError> {
        match tokio::time::timeout(self.def.wall, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.unavailable("its engine thread stopped")),
            Err(_) => Err(self.unavailable("no answer within the wall-time limit")),
        }
    }

    pub async fn fetch(&self, req: HttpRequest) -> Result<HttpResponse, InvokeError> {
        let _slot = self.admit()?;
        if runs_here() {
            return self.fetch_here(req);
        }
        let (tx, rx) = oneshot::channel();
        self.send(Task::Fetch(req, tx))?;
        self.wait(rx).await
    }

    /// `fetch` on this thread's engine for the worker.
    fn fetch_here(&self, req: HttpRequest) -> Result<HttpResponse, InvokeError> {
        let cached = LOCAL_ENGINES.with(|l| l.borrow_mut().take(self.id));
        let mut engine = match cached {
            Some(e) => e,
            None => Engine::new(&self.def, self.def.wall, self.services.clone())?,
        };
        let (r, poisoned) = run_fetch(&mut engine, req);
        // A runtime stopped by a limit is not trusted again: the next request starts afresh.
        if !poisoned {
            LOCAL_ENGINES.with(|l| l.borrow_mut().engines.insert(self.id, engine));
        }
        r
    }

    pub async fn scheduled(&self, event: serde_json::Value) -> Result<(), InvokeError> {
        let _slot = self.admit()?;
        let (tx, rx) = oneshot::channel();
        self.send(Task::Scheduled(event, tx))?;
        self.wait(rx).await
    }

    pub async fn queue(
        &self,
        queue: &str,
        messages: Vec<QueueMessage>,
    ) -> Result<Vec<String>, InvokeError> {
        let _slot = self.admit()?;
        let (tx, rx) = oneshot::channel();
        self.send(Task::Queue(queue.to_string(), messages, tx))?;
        self.wait(rx).await
    }
}

fn worker_thread(
    def: Arc<WorkerDef>,
    wall: Duration,
    services: Option<Services>,
    rx: mpsc::Receiver<Task>,
) {
    let mut engine: Option<Engine> = None;
    for task in rx {
        if engine.is_none() {
            match Engine::new(&def, wall, services.clone()) {
                Ok(e) => engine = Some(e),
                Err(err) => {
                    reply_err(task, err);
                    continue;
                }
            }
        }
        let Some(e) = engine.as_mut() else { continue };
        let poisoned = match task {
            Task::Fetch(req, reply) => {
                let (r, p) = run_fetch(e, req);
                let _ = reply.send(r);
                p
            }
            Task::Scheduled(event, reply) => {
                let r = e.dispatch(("scheduled", event.to_string()), "", |_| Ok(()));
                let p = matches!(r, Err(InvokeError::Limit { .. }));
                let _ = reply.send(r);
                p
            }
            Task::Queue(queue, messages, reply) => {
                let input = json!({"queue": queue, "messages": messages}).to_string();
                let r = e.dispatch(("queue", input), "", |out| {
                    let out = out
                        .as_string()
                        .and_then(|s| s.to_string().ok())
                        .unwrap_or_default();
                    Ok(serde_json::from_str::<serde_json::Value>(&out)
                        .ok()
                        .and_then(|v| {
                            v.get("retried").and_then(|r| r.as_array()).map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(String::from))
                                    .collect()
                            })
                        })
                        .unwrap_or_default())
                });
                let p = matches!(r, Err(InvokeError::Limit { .. }));
                let _ = reply.send(r);
                p
            }
        };
        if poisoned {
            // A runtime stopped by a limit is not trusted again: start afresh next time.
            engine = None;
        }
    }
}

/// Runs `f`, which blocks, without stalling the async runtime: on a tokio worker thread the runtime
/// first hands this thread's other tasks to another thread; elsewhere `f` just runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// Can a request run its worker's JavaScript on the current thread? Only on a multi-threaded
/// tokio runtime, where `block_in_place` can hand the thread's other tasks away.
fn runs_here() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Ids of the worker handles alive; a thread drops its engines of the others.
static LIVE_HANDLES: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
/// Bumped whenever a handle goes away, so that threads know when to look.
static RETIRED: AtomicU64 = AtomicU64::new(0);
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// This thread's engines, by worker handle id.
#[derive(Default)]
struct LocalEngines {
    seen: u64,
    engines: HashMap<u64, Engine>,
}

impl LocalEngines {
    /// Takes the engine of `id` out (the caller puts it back), after dropping those of handles
    /// that are gone (a redeploy or `worker rm`).
    fn take(&mut self, id: u64) -> Option<Engine> {
        let retired = RETIRED.load(Ordering::SeqCst);
        if retired != self.seen {
            let live = LIVE_HANDLES.lock().unwrap_or_else(|p| p.into_inner());
            self.engines.retain(|k, _| live.contains(k));
            self.seen = retired;
        }
        self.engines.remove(&id)
    }
}

thread_local! {
    static LOCAL_ENGINES: RefCell<LocalEngines> = RefCell::new(LocalEngines::default());
}

/// One `fetch` invocation on `engine`; a limit leaves the engine poisoned (`true`).
fn run_fetch(engine: &mut Engine, req: HttpRequest) -> (Result<HttpResponse, InvokeError>, bool) {
    let args = ("fetch", req.url, req.method, req.headers, req.body);
    let r = engine.dispatch(args, &req.request_id, response_of);
    let poisoned = matches!(r, Err(InvokeError::Limit { .. }));
    (r, poisoned)
}

/// The response `__dispatch` settled with: `[status, body, binary, name, value, ...]`, the body
/// a string (latin1 when `binary`, see [`crate::body`]).
fn response_of(v: rquickjs::Value<'_>) -> Result<HttpResponse, String> {
    let bad = |what: &str| format!("bad response: {what}");
    let a = v.into_array().ok_or_else(|| bad("not an array"))?;
    let status: i32 = a.get(0).map_err(|e| bad(&e.to_string()))?;
    let body: String = a.get(1).map_err(|e| bad(&e.to_string()))?;
    let binary: bool = a.get(2).map_err(|e| bad(&e.to_string()))?;
    let body = crate::body::from_js_string(body, binary).map_err(|e| bad(&e))?;
    let mut headers = Vec::with_capacity(a.len().saturating_sub(3) / 2);
    let mut i = 3;
    while i + 1 < a.len() {
        let k: String = a.get(i).map_err(|e| bad(&e.to_string()))?;
        let v: String = a.get(i + 1).map_err(|e| bad(&e.to_string()))?;
        headers.push((k, v));
        i += 2;
    }
    Ok(HttpResponse {
        status: u16::try_from(status).map_err(|_| bad("status out of range"))?,
        headers,
        body,
    })
}

fn reply_err(task: Task, err: InvokeError) {
    match task {
        Task::Fetch(_, r) => {
            let _ = r.send(Err(err));
        }
        Task::Scheduled(_, r) => {
            let _ = r.send(Err(err));
        }
        Task::Queue(_, _, r) => {
            let _ = r.send(Err(err));
        }
    }
}

/// One worker's QuickJS runtime and context.
struct Engine {
    /// `__dispatch` and `__timers`, looked up once after the module loaded. Declared first:
    /// they must be released before the context and the runtime.
    entry: RefCell<Option<(Persistent<Function<'static>>, Persistent<Function<'static>>)>>,
    def: Arc<WorkerDef>,
    // Field order: the context must drop before the runtime.
    ctx: Context,
    // Kept alive for the context; dropped after it.
    _rt: Runtime,
    deadline: Arc<Mutex<Option<Instant>>>,
    interrupted: Arc<AtomicBool>,
    request_id: Rc<RefCell<String>>,
    wall: Duration,
    services: Option<Services>,
}

/// Push the CPU deadline back by `d` (time spent blocked on I/O or sleeping for a timer is
/// not CPU time).
fn extend(deadline: &Mutex<Option<Instant>>, d: Duration) {
    if let Ok(mut g) = deadline.lock()
        && let Some(t) = g.as_mut()
    {
        *t += d;
    }
}

impl Engine {
    fn new(
        def: &Arc<WorkerDef>,
        wall: Duration,
        services: Option<Services>,
    ) -> Result<Engine, InvokeError> {
        let script = |message: String| InvokeError::Script {
            worker: def.name.clone(),
            message,
        };
        let rt = Runtime::new().map_err(|e| script(format!("creating the runtime: {e}")))?;
        rt.set_memory_limit((def.memory_mb as usize) << 20);
        rt.set_max_stack_size(1 << 20);
        let deadline: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let interrupted = Arc::new(AtomicBool::new(false));
        {
            let deadline = deadline.clone();
            let interrupted = interrupted.clone();
            rt.set_interrupt_handler(Some(Box::new(move || {
                let over = deadline
                    .lock()
                    .map(|d| d.is_some_and(|d| Instant::now() >= d))
                    .unwrap_or(false);
                if over {
                    interrupted.store(true, Ordering::SeqCst);
                }
                over
            })));
        }
        let ctx = Context::full(&rt).map_err(|e| script(format!("creating the context: {e}")))?;
        let request_id = Rc::new(RefCell::new(String::new()));
        let engine = Engine {
            entry: RefCell::new(None),
            def: def.clone(),
            ctx,
            _rt: rt,
            deadline,
            interrupted,
            request_id,
            wall,
            services,
        };
        engine.start(|| engine.load())?;
        Ok(engine)
    }

    /// Run `f` under the CPU deadline and map a limit hit to [`InvokeError::Limit`].
    fn start<T>(&self, f: impl FnOnce() -> Result<T, String>) -> Result<T, InvokeError> {
        self.interrupted.store(false, Ordering::SeqCst);
        if let Ok(mut d) = self.deadline.lock() {
            *d = Some(Instant::now() + Duration::from_millis(self.def.cpu_ms));
        }
        let r = f();
        if let Ok(mut d) = self.deadline.lock() {
            *d = None;
        }
        match r {
            Ok(v) => Ok(v),
            Err(_) if self.interrupted.load(Ordering::SeqCst) => Err(InvokeError::Limit {
                worker: self.def.name.clone(),
                limit: "CPU time",
            }),
            Err(m) if m.contains("out of memory") || m.contains("Allocation failed") => {
                Err(InvokeError::Limit {
                    worker: self.def.name.clone(),
                    limit: "memory",
                })
            }
            Err(m) if m.contains("stack overflow") => Err(InvokeError::Limit {
                worker: self.def.name.clone(),
                limit: "stack",
            }),
            Err(message) => Err(InvokeError::Script {
                worker: self.def.name.clone(),
                message,
            }),
        }
    }

    fn load(&self) -> Result<(), String> {
        let def = self.def.clone();
        let request_id = self.request_id.clone();
        self.ctx.with(|ctx| {
            let g = ctx.globals();
            let name = def.name.clone();
            let version = def.version;
            let rid = request_id.clone();
            let log = Function::new(ctx.clone(), move |level: String, msg: String| {
                let mut line = json!({
                    "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "level": level, "msg": msg, "source": "console",
                    "worker": name, "version": version,
                });
                let id = rid.borrow();
                if !id.is_empty() {
                    line["request_id"] = json!(*id);
                }
                println!("{line}");
            })
            .catch(&ctx)
            .map_err(caught)?;
            g.set("__log", log).catch(&ctx).map_err(caught)?;
            let uuid = Function::new(ctx.clone(), || uuid::Uuid::new_v4().to_string())
                .catch(&ctx)
                .map_err(caught)?;
            g.set("__uuid", uuid).catch(&ctx).map_err(caught)?;
            let random = Function::new(ctx.clone(), |n: usize| {
                let mut v = vec![0u8; n.min(65536)];
                rand::fill(&mut v[..]);
                v
            })
            .catch(&ctx)
            .map_err(caught)?;
            g.set("__random", random).catch(&ctx).map_err(caught)?;
            let parse = Function::new(ctx.clone(), |href: String, base: Opt<String>| {
                parse_url(&href, base.0.as_deref())
            })
            .catch(&ctx)
            .map_err(caught)?;
            g.set("__url", parse).catch(&ctx).map_err(caught)?;
            let services = self.services.clone();
            let deadline = self.deadline.clone();
            let enqueue = Function::new(
                ctx.clone(),
                move |ctx: rquickjs::Ctx<'_>, queue: String, body: String, delay: f64| {
                    let Some(s) = &services else {
                        return Err(rquickjs::Exception::throw_message(
                            &ctx,
                            "env.QUEUE is not available here",
                        ));
                    };
                    let payload: serde_json::Value =
                        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                    let delay = if delay.is_finite() {
                        delay.max(0.0)
                    } else {
                        0.0
                    };
                    let started = Instant::now();
                    let r = blocking(|| {
                        s.handle.block_on(async {
                            let c = s.pool.get().await.map_err(|e| e.to_string())?;
                            c.query_one(
                                "SELECT runner.enqueue($1, $2, now() + make_interval(secs => $3))",
                                &[&queue, &payload, &delay],
                            )
                            .await
                            .map(|r| r.get::<_, i64>(0))
                            .map_err(|e| e.to_string())
                        })
                    });
                    extend(&deadline, started.elapsed());
                    r.map(|id| id as f64).map_err(|e| {
                        crate::log::line(
                            "error",
                            "env.QUEUE.send failed",
                            json!({"queue": queue, "error": e}),
                        );
                        rquickjs::Exception::throw_message(&ctx, "env.QUEUE.send failed")
                    })
                },
            )
            .catch(&ctx)
            .map_err(caught)?;
            g.set("__enqueue", enqueue).catch(&ctx).map_err(caught)?;
            let services = self.services.clone();
            let deadline = self.deadline.clone();
            let fetch = Function::new(ctx.clone(), move |ctx: rquickjs::Ctx<'_>, req: String| {
                let Some(s) = &services else {
                    return Err(rquickjs::Exception::throw_type(
                        &ctx,
                        "fetch is not available here",
                    ));
                };
                let req: crate::fetch::FetchRequest = serde_json::from_str(&req)
                    .map_err(|e| rquickjs::Exception::throw_type(&ctx, &format!("fetch: {e}")))?;
                let started = Instant::now();
                let r = blocking(|| s.handle.block_on(crate::fetch::fetch(&s.fetch, req)));
                extend(&deadline, started.elapsed());
                match r {
                    Ok(resp) => Ok(serde_json::to_string(&resp).unwrap_or_default()),
                    Err(msg) => Err(rquickjs::Exception::throw_type(&ctx, &msg)),
                }
            })
            .catch(&ctx)
            .map_err(caught)?;
            g.set("__fetch", fetch).catch(&ctx).map_err(caught)?;
            // env.DB: only for a worker that has its own token; the token stays in Rust.
            let gateway = self.services.as_ref().and_then(|s| s.gateway.clone());
            if let (Some(token), Some(gateway), Some(s)) =
                (def.db_token.clone(), gateway, self.services.clone())
            {
                let deadline = self.deadline.clone();
                let (name, version, rid) = (def.name.clone(), def.version, self.request_id.clone());
                let query =
                    Function::new(ctx.clone(), move |sql: String, params: String| -> String {
                        let params: Vec<serde_json::Value> =
                            serde_json::from_str(&params).unwrap_or_default();
                        let statement = postgate::Statement { sql, params };
                        // postgate logs what it keeps from the caller (an internal error's
                        // detail) through `tracing`: in this span, with the worker's names.
                        let span = tracing::info_span!(
                            "env.DB",
                            worker = name.as_str(),
                            version,
                            request_id = rid.borrow().as_str()
                        );
                        let started = Instant::now();
                        let r = blocking(|| {
                            s.handle.block_on(
                                gateway
                                    .query(token.expose(), statement, postgate::RowsAs::Objects)
                                    .instrument(span),
                            )
                        });
                        extend(&deadline, started.elapsed());
                        match r {
                            Ok(res) => json!({"ok": true, "result": res}).to_string(),
                            Err(e) => json!({"ok": false, "error": e}).to_string(),
                        }
                    })
                    .catch(&ctx)
                    .map_err(caught)?;
                g.set("__db", query).catch(&ctx).map_err(caught)?;
            }
            ctx.eval::<(), _>(PRELUDE).catch(&ctx).map_err(caught)?;
            let env: Object = ctx
                .json_parse(def.vars.to_string())
                .catch(&ctx)
                .map_err(caught)?
                .into_object()
                .ok_or_else(|| "worker vars must be a JSON object".to_string())?;
            let make_queue: Function = g.get("__makeQueue").catch(&ctx).map_err(caught)?;
            let queue: Object = make_queue
                .call((def.default_send_queue(),))
                .catch(&ctx)
                .map_err(caught)?;
            env.set("QUEUE", queue).catch(&ctx).map_err(caught)?;
            for (k, v) in &def.secrets {
                env.set(k.as_str(), v.expose())
                    .catch(&ctx)
                    .map_err(caught)?;
            }
            let make_db: Function = g.get("__makeDb").catch(&ctx).map_err(caught)?;
            let db: rquickjs::Value = make_db.call(()).catch(&ctx).map_err(caught)?;
            if !db.is_undefined() {
                env.set("DB", db).catch(&ctx).map_err(caught)?;
            }
            g.set("__env", env).catch(&ctx).map_err(caught)?;
            let module =
                Module::declare(ctx.clone(), format!("{}.js", def.name), def.source.as_str())
                    .catch(&ctx)
                    .map_err(caught)?;
            let (module, done) = module.eval().catch(&ctx).map_err(caught)?;
            done.finish::<()>().catch(&ctx).map_err(caught)?;
            let default: Object = module
                .get("default")
                .catch(&ctx)
                .map_err(|e| format!("the module has no default export: {}", caught(e)))?;
            g.set("__worker", default).catch(&ctx).map_err(caught)?;
            let dispatch: Function = g.get("__dispatch").catch(&ctx).map_err(caught)?;
            let timers: Function = g.get("__timers").catch(&ctx).map_err(caught)?;
            *self.entry.borrow_mut() = Some((
                Persistent::save(&ctx, dispatch),
                Persistent::save(&ctx, timers),
            ));
            Ok(())
        })
    }

    /// Calls `__dispatch` with `args` and drives what it returns: a value the handler gave at once,
    /// or a promise, run to completion within the limits. `settled` turns the final value into `T`
    /// while the context is at hand.
    fn dispatch<A, T>(
        &mut self,
        args: A,
        request_id: &str,
        settled: impl for<'js> FnOnce(rquickjs::Value<'js>) -> Result<T, String>,
    ) -> Result<T, InvokeError>
    where
        A: for<'js> rquickjs::function::IntoArgs<'js>,
    {
        {
            let mut id = self.request_id.borrow_mut();
            id.clear();
            id.push_str(request_id);
        }
        let wall = Instant::now() + self.wall;
        let deadline = self.deadline.clone();
        let r = self.start(|| {
            self.ctx.with(|ctx| {
                let (f, timers) = match self.entry.borrow().as_ref() {
                    Some((f, t)) => (
                        f.clone().restore(&ctx).map_err(|e| e.to_string())?,
                        t.clone().restore(&ctx).map_err(|e| e.to_string())?,
                    ),
                    None => return Err("the worker did not load".to_string()),
                };
                let v: rquickjs::Value = f.call(args).catch(&ctx).map_err(caught)?;
                // A handler that answered synchronously: the result, with no promise to drive.
                let p: Promise = match v.as_promise() {
                    Some(p) => p.clone(),
                    None => return settled(v),
                };
                // Drive the promise: microtasks first, then due timers, then sleep until the
                // next timer (not counted as CPU time), within the wall-time limit.
                let out = loop {
                    if let Some(r) = p.result::<rquickjs::Value>() {
                        break r.catch(&ctx).map_err(caught).and_then(settled);
                    }
                    if ctx.execute_pending_job() {
                        continue;
                    }
                    let next: f64 = match timers.call(()).catch(&ctx) {
                        Ok(n) => n,
                        Err(e) => break Err(caught(e)),
                    };
                    if ctx.execute_pending_job()
                        || p.state() != rquickjs::promise::PromiseState::Pending
                    {
                        continue;
                    }
                    if next < 0.0 {
                        break Err("the worker's promise never settled".to_string());
                    }
                    let now = Instant::now();
                    if now >= wall {
                        break Err("wall-time limit reached while waiting for a timer".to_string());
                    }
                    let nap = Duration::from_secs_f64(next / 1000.0).min(wall - now);
                    blocking(|| std::thread::sleep(nap));
                    extend(&deadline, nap);
                };
                // A settled invocation dropped its timers itself (`__dispatch`).
                if out.is_err()
                    && let Ok(clear) = ctx.globals().get::<_, Function>("__timersClear")
                {
                    let _ = clear.call::<_, ()>(());
                }
                out
            })
        });
        self.request_id.borrow_mut().clear();
        r
    }
}

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

/// `new URL(href, base)` backed by the `url` crate; `None` for an invalid URL.
fn parse_url(href: &str, base: Option<&str>) -> Option<String> {
    let u = match base {
        Some(b) => url::Url::parse(b).ok()?.join(href).ok()?,
        None => url::Url::parse(href).ok()?,
    };
    let host = u.host_str().unwrap_or("").to_string();
    let port = u.port().map(|p| p.to_string()).unwrap_or_default();
    Some(
        json!({
            "href": u.as_str(),
            "origin": u.origin().ascii_serialization(),
            "protocol": format!("{}:", u.scheme()),
            "username": u.username(),
            "password": u.password().unwrap_or(""),
            "host": if port.is_empty() { host.clone() } else { format!("{host}:{port}") },
            "hostname": host,
            "port": port,
            "pathname": u.path(),
            "search": u.query().filter(|q| !q.is_empty()).map(|q| format!("?{q}")).unwrap_or_default(),
            "hash": u.fragment().filter(|f| !f.is_empty()).map(|f| format!("#{f}")).unwrap_or_default(),
        })
        .to_string(),
    )
}
