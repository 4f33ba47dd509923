//! One worker's QuickJS runtime and context ([`Engine`]): made with the worker's memory limit,
//! run under its CPU deadline (the interrupt handler), and driven through `__dispatch` until the
//! handler's promise settles within the wall-time limit. The host functions it offers the script
//! are in `host`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rquickjs::{CatchResultExt, Context, Function, Promise, Runtime};

use super::blocking::{blocking, extend};
use super::host::{self, Entry, Host};
use super::{HttpRequest, HttpResponse, InvokeError, Services, WorkerDef, caught};

/// Modules a worker may import by name: Cloudflare's, re-exporting the prelude's globals.
const BUILTIN_MODULES: &[(&str, &str)] = &[
    (
        "cloudflare:workers",
        "export const WorkflowEntrypoint = globalThis.WorkflowEntrypoint;\n\
         export const NonRetryableError = globalThis.NonRetryableError;\n",
    ),
    (
        "cloudflare:workflows",
        "export const NonRetryableError = globalThis.NonRetryableError;\n",
    ),
];

/// One worker's QuickJS runtime and context.
pub(super) struct Engine {
    /// `__dispatch` and `__timers`, looked up once after the module loaded. Declared first:
    /// they must be released before the context and the runtime.
    entry: RefCell<Option<Entry>>,
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

impl Engine {
    pub(super) fn new(
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
        // `import { WorkflowEntrypoint } from 'cloudflare:workers'` (and `NonRetryableError` from
        // 'cloudflare:workflows'), as code written for Cloudflare has it: the prelude's globals.
        let mut resolver = rquickjs::loader::BuiltinResolver::default();
        let mut loader = rquickjs::loader::BuiltinLoader::default();
        for (name, source) in BUILTIN_MODULES {
            resolver.add_module(*name);
            loader.add_module(*name, *source);
        }
        rt.set_loader(resolver, loader);
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

    /// Install the host functions, the prelude, `env` and the worker's module; keep its entry
    /// points.
    fn load(&self) -> Result<(), String> {
        let entry = host::load(
            &self.ctx,
            Host {
                def: &self.def,
                services: &self.services,
                deadline: &self.deadline,
                request_id: &self.request_id,
            },
        )?;
        *self.entry.borrow_mut() = Some(entry);
        Ok(())
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

    /// Calls `__dispatch` with `args` and drives what it returns: a value the handler gave at once,
    /// or a promise, run to completion within the limits. `settled` turns the final value into `T`
    /// while the context is at hand.
    pub(super) fn dispatch<A, T>(
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

/// One `fetch` invocation on `engine`; a limit leaves the engine poisoned (`true`).
pub(super) fn run_fetch(
    engine: &mut Engine,
    req: HttpRequest,
) -> (Result<HttpResponse, InvokeError>, bool) {
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
