//! A running worker version: [`WorkerHandle`] admits invocations (up to the worker's
//! concurrency), runs an HTTP request on the calling thread's own engine, and sends cron and queue
//! invocations to the worker's OS thread, which keeps one engine and answers through a channel.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::json;
use tokio::sync::oneshot;

use super::engine::{Engine, run_fetch};
use super::local;
use super::{HttpRequest, HttpResponse, InvokeError, QueueMessage, Services, WorkerDef};

/// An invocation for the worker's own thread, with where to send its answer.
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
    /// One run of a workflow instance (input and outcome as JSON text; see `crate::workflow`).
    Workflow(String, oneshot::Sender<Result<String, InvokeError>>),
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

struct InflightGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        local::retire(self.id);
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
        let id = local::register();
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
        let cached = local::take(self.id);
        let mut engine = match cached {
            Some(e) => e,
            None => Engine::new(&self.def, self.def.wall, self.services.clone())?,
        };
        let (r, poisoned) = run_fetch(&mut engine, req);
        // A runtime stopped by a limit is not trusted again: the next request starts afresh.
        if !poisoned {
            local::put(self.id, engine);
        }
        r
    }

    pub async fn scheduled(&self, event: serde_json::Value) -> Result<(), InvokeError> {
        let _slot = self.admit()?;
        let (tx, rx) = oneshot::channel();
        self.send(Task::Scheduled(event, tx))?;
        self.wait(rx).await
    }

    /// One run of a workflow instance on the worker's thread: `input` and the outcome are the
    /// JSON text `crate::workflow` reads and writes.
    pub async fn workflow(&self, input: String) -> Result<String, InvokeError> {
        let _slot = self.admit()?;
        let (tx, rx) = oneshot::channel();
        self.send(Task::Workflow(input, tx))?;
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
            Task::Workflow(input, reply) => {
                let r = e.dispatch(("workflow", input), "", |out| {
                    Ok(out
                        .as_string()
                        .and_then(|s| s.to_string().ok())
                        .unwrap_or_default())
                });
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

/// Can a request run its worker's JavaScript on the current thread? Only on a multi-threaded
/// tokio runtime, where `block_in_place` can hand the thread's other tasks away.
fn runs_here() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
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
        Task::Workflow(_, r) => {
            let _ = r.send(Err(err));
        }
    }
}
