//! The deployed workers of this replica: loaded from Postgres, reloaded on
//! NOTIFY runner_workers (and by a slow poll), routed by host or declared route.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::watch;
use tokio_postgres::GenericClient;
use tokio_util::sync::CancellationToken;

use crate::db::{DbError, conn};
use crate::js::{Services, WorkerDef, WorkerHandle};
use crate::notify::Bus;
use crate::secrets::SecretsKey;

pub struct Registry {
    workers: RwLock<HashMap<String, Arc<WorkerHandle>>>,
    /// The workers' host suffix: `NAME.SUFFIX` routes to worker NAME (stack.toml's
    /// `[domains] workers`, default `workers.DOMAIN`).
    suffix: Option<String>,
    defaults: Limits,
    key: Option<SecretsKey>,
    services: Option<Services>,
    queues: watch::Sender<BTreeSet<String>>,
}

/// A replica's default limits (stack.toml `[runner]`), used where a worker sets none.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub cpu_ms: u64,
    pub memory_mb: u64,
    pub wall: Duration,
    pub body_bytes: usize,
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_ms: 50,
            memory_mb: 64,
            wall: Duration::from_secs(30),
            body_bytes: 1 << 20,
            concurrency: crate::js::MAX_INFLIGHT,
        }
    }
}

const SELECT: &str = "
SELECT w.name, w.active_version, v.source, w.routes, w.queues, w.vars, w.cpu_ms, w.memory_mb,
       w.wall_ms, w.body_bytes, w.concurrency,
       (SELECT coalesce(jsonb_object_agg(wf.binding, wf.name), '{}'::jsonb)
          FROM runner.workflows wf WHERE wf.worker = w.name)
  FROM runner.workers w
  JOIN runner.worker_versions v ON v.worker = w.name AND v.version = w.active_version";

const SECRETS: &str =
    "SELECT worker, name, nonce, sealed FROM runner.worker_secrets WHERE worker = ANY($1)";

type SealedRows = Vec<tokio_postgres::Row>;

impl Registry {
    pub fn new(
        suffix: Option<String>,
        defaults: Limits,
        key: Option<SecretsKey>,
        services: Option<Services>,
    ) -> Arc<Registry> {
        Arc::new(Registry {
            workers: RwLock::new(HashMap::new()),
            suffix: suffix
                .map(|d| d.trim_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty()),
            defaults,
            key,
            services,
            queues: watch::channel(BTreeSet::new()).0,
        })
    }

    /// The definition of one row of [`SELECT`], with its secrets opened.
    fn def_of(&self, r: &tokio_postgres::Row, sealed: &SealedRows) -> Result<WorkerDef, String> {
        let d = &self.defaults;
        let name: String = r.get(0);
        let pos = |i: usize| r.get::<_, Option<i32>>(i).filter(|v| *v > 0);
        let mut secrets = std::collections::BTreeMap::new();
        let mut db_token = None;
        for s in sealed.iter().filter(|s| s.get::<_, &str>(0) == name) {
            let key = self.key.as_ref().ok_or_else(|| {
                "the worker has secrets but RUNNER_SECRETS_KEY is not set".to_string()
            })?;
            let sname: String = s.get(1);
            let value = key
                .open(&name, &sname, s.get(2), s.get(3))
                .map_err(|e| e.to_string())?;
            if sname == crate::secrets::DB_TOKEN {
                db_token = Some(value);
            } else {
                secrets.insert(sname, value);
            }
        }
        Ok(WorkerDef {
            version: r.get(1),
            source: r.get(2),
            routes: r.get(3),
            queues: r.get(4),
            vars: r.get(5),
            secrets,
            db_token,
            cpu_ms: pos(6).map_or(d.cpu_ms, |v| v as u64),
            memory_mb: pos(7).map_or(d.memory_mb, |v| v as u64),
            wall: pos(8).map_or(d.wall, |v| Duration::from_millis(v as u64)),
            body_bytes: r
                .get::<_, Option<i32>>(9)
                .filter(|v| *v >= 0)
                .map_or(d.body_bytes, |v| v as usize),
            concurrency: pos(10).map_or(d.concurrency, |v| v as usize),
            workflows: serde_json::from_value(r.get(11)).unwrap_or_default(),
            name,
        })
    }

    async fn sealed(client: &impl GenericClient, names: &[String]) -> Result<SealedRows, DbError> {
        client
            .query(SECRETS, &[&names])
            .await
            .map_err(|e| DbError::new("loading worker secrets", e))
    }

    /// Queues some worker consumes; changes as workers are deployed.
    pub fn queues(&self) -> watch::Receiver<BTreeSet<String>> {
        self.queues.subscribe()
    }

    pub fn get(&self, name: &str) -> Option<Arc<WorkerHandle>> {
        self.workers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Workers that consume `queue`.
    pub fn for_queue(&self, queue: &str) -> Option<Arc<WorkerHandle>> {
        let map = self.workers.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map
            .values()
            .filter(|w| w.def.queues.iter().any(|q| q == queue))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        v.into_iter().next()
    }

    /// Install `def` unless the same version is already running.
    pub fn install(&self, def: WorkerDef) -> std::io::Result<()> {
        let mut map = self.workers.write().unwrap_or_else(|p| p.into_inner());
        if map.get(&def.name).is_some_and(|h| *h.def == def) {
            return Ok(());
        }
        let name = def.name.clone();
        let version = def.version;
        let h = WorkerHandle::spawn(def, self.services.clone())?;
        map.insert(name.clone(), h);
        drop(map);
        crate::log::info(
            "worker loaded",
            serde_json::json!({"worker": name, "version": version}),
        );
        self.publish_queues();
        Ok(())
    }

    pub fn remove(&self, name: &str) {
        let removed = self
            .workers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if removed.is_some() {
            crate::log::info("worker removed", serde_json::json!({"worker": name}));
            self.publish_queues();
        }
    }

    fn publish_queues(&self) {
        let map = self.workers.read().unwrap_or_else(|p| p.into_inner());
        let set: BTreeSet<String> = map.values().flat_map(|w| w.def.queues.clone()).collect();
        self.queues.send_if_modified(|cur| {
            if *cur != set {
                *cur = set;
                true
            } else {
                false
            }
        });
    }

    /// Pick the worker for a request: `NAME.workers.DOMAIN`, then declared routes (host,
    /// `/path` prefix, or `host/path` prefix; the longest match wins).
    pub fn route(&self, host: &str, path: &str) -> Option<Arc<WorkerHandle>> {
        let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
        if let Some(suffix) = &self.suffix
            && let Some(name) = host
                .strip_suffix(suffix.as_str())
                .and_then(|h| h.strip_suffix('.'))
            && !name.is_empty()
            && !name.contains('.')
        {
            return self.get(name);
        }
        let map = self.workers.read().unwrap_or_else(|p| p.into_inner());
        let mut best: Option<(usize, &Arc<WorkerHandle>)> = None;
        for w in map.values() {
            for r in &w.def.routes {
                if let Some(score) = route_matches(r, &host, path)
                    && best
                        .is_none_or(|(s, b)| score > s || (score == s && w.def.name < b.def.name))
                {
                    best = Some((score, w));
                }
            }
        }
        best.map(|(_, w)| w.clone())
    }

    /// Reload every worker from the database.
    pub async fn reload_all(&self, client: &impl GenericClient) -> Result<(), DbError> {
        let rows = client
            .query(SELECT, &[])
            .await
            .map_err(|e| DbError::new("loading workers", e))?;
        let all: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let sealed = Self::sealed(client, &all).await?;
        let names: BTreeSet<String> = all.iter().cloned().collect();
        for r in &rows {
            self.load_row(r, &sealed);
        }
        let stale: Vec<String> = self
            .workers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        for n in stale {
            self.remove(&n);
        }
        Ok(())
    }

    /// Reload one worker.
    pub async fn reload(&self, client: &impl GenericClient, name: &str) -> Result<(), DbError> {
        let rows = client
            .query(&format!("{SELECT} WHERE w.name = $1"), &[&name])
            .await
            .map_err(|e| DbError::new(format!("loading worker {name}"), e))?;
        match rows.first() {
            Some(r) => {
                let sealed = Self::sealed(client, &[name.to_string()]).await?;
                self.load_row(r, &sealed);
            }
            None => self.remove(name),
        }
        Ok(())
    }

    fn load_row(&self, r: &tokio_postgres::Row, sealed: &SealedRows) {
        let name: String = r.get(0);
        match self.def_of(r, sealed) {
            Ok(def) => {
                if let Err(e) = self.install(def) {
                    crate::log::error(&format!("starting worker {name}"), &e);
                }
            }
            Err(e) => crate::log::line(
                "error",
                "worker not loaded",
                serde_json::json!({"worker": name, "error": e}),
            ),
        }
    }
}

/// A route is `host`, `/path` or `host/path`; returns a specificity score when it matches.
fn route_matches(route: &str, host: &str, path: &str) -> Option<usize> {
    let (rhost, rpath) = match route.find('/') {
        Some(0) => ("", route),
        Some(i) => (&route[..i], &route[i..]),
        None => (route, ""),
    };
    if !rhost.is_empty() && !rhost.eq_ignore_ascii_case(host) {
        return None;
    }
    let rpath = rpath.trim_end_matches('/');
    let path_ok = rpath.is_empty()
        || path == rpath
        || (path.starts_with(rpath) && path.as_bytes().get(rpath.len()) == Some(&b'/'));
    path_ok.then_some(rhost.len() * 1000 + rpath.len() + 1)
}

/// Keep the registry current until `shutdown`: reload on notifications, and every `poll`.
pub async fn watch(
    registry: Arc<Registry>,
    pool: Pool,
    bus: Arc<Bus>,
    poll: Duration,
    shutdown: CancellationToken,
) {
    let mut rx = bus.workers.subscribe();
    loop {
        let which = tokio::select! {
            _ = shutdown.cancelled() => return,
            // Lagged or closed: reload everything.
            m = rx.recv() => m.ok(),
            _ = tokio::time::sleep(poll) => None,
        };
        let res = async {
            let c = conn(&pool).await?;
            match which.as_deref() {
                Some(name) if name != "*" => registry.reload(&**c, name).await,
                _ => registry.reload_all(&**c).await,
            }
        }
        .await;
        if let Err(e) = res {
            crate::log::error("reloading workers failed", &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::route_matches;

    #[test]
    fn routes() {
        assert!(route_matches("/api", "x", "/api").is_some());
        assert!(route_matches("/api", "x", "/api/v1").is_some());
        assert!(route_matches("/api", "x", "/apix").is_none());
        assert!(route_matches("a.com", "a.com", "/anything").is_some());
        assert!(route_matches("a.com/p", "a.com", "/p/q").is_some());
        assert!(route_matches("a.com/p", "b.com", "/p").is_none());
        assert!(route_matches("a.com/p", "a.com", "/p") > route_matches("/p", "a.com", "/p"));
    }
}
