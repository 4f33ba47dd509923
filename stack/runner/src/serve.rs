//! `runner serve`: HTTP, queue consumers and cron on one process, stopped by a token.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::http::AppState;
use crate::js::{InvokeError, QueueMessage};
use crate::metrics::Metrics;
use crate::notify::Bus;
use crate::queue::{BoxFuture, ConsumerConfig, Job, JobHandler};
use crate::registry::Registry;

pub use crate::sql::CRON_QUEUE;

/// Validated settings for [`run`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub workers_domain: Option<String>,
    /// Identifies this replica in leases and fired ticks.
    pub owner: String,
    pub pool_size: usize,
    pub batch: i64,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub poll: Duration,
    pub grace: Duration,
    pub cron: bool,
    pub cron_every: Duration,
    /// Default limits of workers that set none (stack.toml `[runner]`).
    pub limits: crate::registry::Limits,
    /// Opens worker secrets (`RUNNER_SECRETS_KEY`).
    pub secrets_key: Option<crate::secrets::SecretsKey>,
    /// postgate's settings for `env.DB` (its database URL and token pepper); None = no env.DB.
    pub postgate: Option<postgate::Settings>,
    /// Outbound fetch: addresses allowed despite the private/loopback block, timeout, size.
    pub fetch: crate::fetch::FetchPolicy,
    /// The workflows HTTP API's bearer token; None: the API is off.
    pub workflows_token: Option<crate::workflow::http::Token>,
    /// How long a finished workflow instance is kept (`crate::workflow::retention`).
    pub workflow_retention: Duration,
}

impl Settings {
    pub fn new(database_url: impl Into<String>, owner: impl Into<String>) -> Settings {
        Settings {
            database_url: database_url.into(),
            workers_domain: None,
            owner: owner.into(),
            pool_size: 8,
            batch: 100,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            grace: Duration::from_secs(20),
            cron: true,
            cron_every: Duration::from_millis(250),
            limits: crate::registry::Limits::default(),
            secrets_key: None,
            postgate: None,
            fetch: crate::fetch::FetchPolicy {
                allow: Vec::new(),
                timeout: Duration::from_secs(15),
                max_response: 8 << 20,
                tls: None,
            },
            workflows_token: None,
            workflow_retention: Duration::from_secs_f64(
                crate::workflow::retention::DEFAULT_DAYS * 86_400.0,
            ),
        }
    }

    pub fn consumer(&self, queue: &str) -> ConsumerConfig {
        ConsumerConfig {
            queue: queue.to_string(),
            owner: self.owner.clone(),
            batch: self.batch,
            lease: self.lease,
            heartbeat: self.heartbeat,
            poll: self.poll,
            keep_done: Duration::from_secs(3600),
            grace: self.grace,
        }
    }
}

/// Dispatches jobs to JavaScript workers: `queue(batch)` for bound queues, `scheduled(event)`
/// for cron ticks.
pub struct JsHandler {
    pub registry: Arc<Registry>,
    /// For workflow runs (`crate::workflow`).
    pub pool: deadpool_postgres::Pool,
}

impl JobHandler for JsHandler {
    fn handle<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Result<(), String>>> {
        Box::pin(async move {
            let Some(first) = jobs.first() else {
                return Vec::new();
            };
            if first.queue == crate::sql::WORKFLOW_QUEUE {
                return crate::workflow::handle(&self.registry, &self.pool, jobs).await;
            }
            if first.queue == CRON_QUEUE {
                let mut out = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let worker = job
                        .payload
                        .get("worker")
                        .and_then(|w| w.as_str())
                        .unwrap_or("");
                    out.push(match self.registry.get(worker) {
                        Some(w) => w
                            .scheduled(job.payload.clone())
                            .await
                            .map_err(|e| e.to_string()),
                        None => Err(format!("no worker named {worker:?} is deployed")),
                    });
                }
                return out;
            }
            let Some(worker) = self.registry.for_queue(&first.queue) else {
                let e = format!("no worker consumes queue {}", first.queue);
                return jobs.iter().map(|_| Err(e.clone())).collect();
            };
            let messages = jobs
                .iter()
                .map(|j| QueueMessage {
                    id: j.id,
                    body: j.payload.clone(),
                    attempts: j.attempts,
                })
                .collect();
            match worker.queue(&first.queue, messages).await {
                Ok(retried) => jobs
                    .iter()
                    .map(|j| {
                        if retried.iter().any(|r| *r == j.id.to_string()) {
                            Err("retry requested by the worker".to_string())
                        } else {
                            Ok(())
                        }
                    })
                    .collect(),
                Err(e @ InvokeError::Limit { .. })
                | Err(e @ InvokeError::Script { .. })
                | Err(e @ InvokeError::Unavailable { .. }) => {
                    jobs.iter().map(|_| Err(e.to_string())).collect()
                }
            }
        })
    }
}

/// Serve until `shutdown` is cancelled; then stop taking work, finish what is in flight
/// (within `grace`) and release the rest.
pub async fn run(
    listener: TcpListener,
    s: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = crate::db::pool(&s.database_url, s.pool_size)?;
    let bus = Bus::new();
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    let gateway = match &s.postgate {
        Some(ps) => {
            let g = Arc::new(
                postgate::Gateway::new(ps.clone()).context("setting up postgate for env.DB")?,
            );
            tasks.spawn(g.background(shutdown.clone()));
            Some(g)
        }
        None => None,
    };
    let registry = Registry::new(
        s.workers_domain.clone(),
        s.limits.clone(),
        s.secrets_key.clone(),
        Some(crate::js::Services {
            pool: pool.clone(),
            handle: tokio::runtime::Handle::current(),
            fetch: s.fetch.clone(),
            gateway,
            metrics: metrics.clone(),
        }),
    );

    tasks.spawn(crate::notify::listen(
        s.database_url.clone(),
        bus.clone(),
        shutdown.clone(),
    ));
    if let Some(key) = s.secrets_key.as_ref().filter(|k| k.has_previous()) {
        reseal_secrets(&pool, key).await;
    }
    match crate::db::conn(&pool).await {
        Ok(c) => {
            if let Err(e) = registry.reload_all(&**c).await {
                crate::log::error("loading workers at start-up", &e);
            }
        }
        Err(e) => crate::log::error("loading workers at start-up", &e),
    }
    tasks.spawn(crate::registry::watch(
        registry.clone(),
        pool.clone(),
        bus.clone(),
        Duration::from_secs(30),
        shutdown.clone(),
    ));
    if s.cron {
        tasks.spawn(crate::cron::run_cron(
            pool.clone(),
            s.owner.clone(),
            s.cron_every,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    tasks.spawn(crate::workflow::retention::run(
        pool.clone(),
        s.workflow_retention,
        shutdown.clone(),
    ));
    // One consumer per queue that some worker consumes, plus the cron queue.
    {
        let (pool, registry, bus, metrics, shutdown, s) = (
            pool.clone(),
            registry.clone(),
            bus.clone(),
            metrics.clone(),
            shutdown.clone(),
            s.clone(),
        );
        tasks.spawn(async move {
            let handler: Arc<dyn JobHandler> = Arc::new(JsHandler {
                registry: registry.clone(),
                pool: pool.clone(),
            });
            let mut started: BTreeSet<String> = BTreeSet::new();
            let mut consumers = JoinSet::new();
            let mut queues = registry.queues();
            loop {
                let mut want = queues.borrow_and_update().clone();
                want.insert(CRON_QUEUE.to_string());
                want.insert(crate::sql::WORKFLOW_QUEUE.to_string());
                for q in want.difference(&started.clone()) {
                    started.insert(q.clone());
                    let mut cfg = s.consumer(q);
                    if q == crate::sql::WORKFLOW_QUEUE {
                        cfg.batch = cfg.batch.min(crate::workflow::BATCH);
                    }
                    consumers.spawn(crate::queue::run_consumer(
                        pool.clone(),
                        cfg,
                        handler.clone(),
                        bus.jobs.for_queue(q),
                        metrics.clone(),
                        shutdown.clone(),
                    ));
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = queues.changed() => if r.is_err() { break },
                }
            }
            while consumers.join_next().await.is_some() {}
        });
    }

    let state = AppState {
        workflows_token: s.workflows_token.clone(),
        pool: pool.clone(),
        registry,
        metrics,
        ready: ready.clone(),
    };
    ready.store(true, Ordering::SeqCst);
    let local = listener
        .local_addr()
        .context("reading the listen address")?;
    crate::log::info(
        "runner serving",
        serde_json::json!({"addr": local.to_string(), "owner": s.owner}),
    );
    {
        let ready = ready.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            ready.store(false, Ordering::SeqCst);
        });
    }
    crate::http::serve(listener, state, shutdown.clone(), s.grace).await;
    while tasks.join_next().await.is_some() {}
    crate::log::info("runner stopped", serde_json::json!({"owner": s.owner}));
    Ok(())
}

/// After a key rotation: seal stored worker secrets again under the current key, and say so.
async fn reseal_secrets(pool: &deadpool_postgres::Pool, key: &crate::secrets::SecretsKey) {
    let r = match crate::db::conn(pool).await {
        Ok(c) => crate::reseal::reseal(&**c, key).await,
        Err(e) => Err(e.into()),
    };
    match r {
        Ok(r) => {
            let unopenable: Vec<String> = r
                .unopenable
                .iter()
                .map(|(w, n)| format!("{w}/{n}"))
                .collect();
            crate::log::line(
                if unopenable.is_empty() {
                    "info"
                } else {
                    "error"
                },
                "worker secrets sealed again under the current RUNNER_SECRETS_KEY",
                serde_json::json!({
                    "resealed": r.resealed,
                    "unopenable": unopenable,
                    "hint": if unopenable.is_empty() {
                        "once every replica has started with this key, RUNNER_SECRETS_KEY_PREVIOUS can go"
                    } else {
                        "these open with none of the keys given: deploy them again with their values"
                    },
                }),
            );
        }
        Err(e) => crate::log::error("sealing worker secrets again", &e),
    }
}
