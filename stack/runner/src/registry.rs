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

pub struct Registry {
    workers: RwLock<HashMap<String, Arc<WorkerHandle>>>,
    /// `NAME.workers.DOMAIN` routes to worker NAME.
    domain: Option<String>,
    wall: Duration,
    services: Option<Services>,
    queues: watch::Sender<BTreeSet<String>>,
}

const SELECT: &str = "
SELECT w.name, w.active_version, v.source, w.routes, w.queues, w.vars, w.cpu_ms, w.memory_mb
  FROM runner.workers w
  JOIN runner.worker_versions v ON v.worker = w.name AND v.version = w.active_version";

fn def_of(r: &tokio_postgres::Row) -> WorkerDef {
    WorkerDef {
        name: r.get(0),
        version: r.get(1),
        source: r.get(2),
        routes: r.get(3),
        queues: r.get(4),
        vars: r.get(5),
        cpu_ms: r.get::<_, i32>(6).max(1) as u64,
        memory_mb: r.get::<_, i32>(7).max(1) as u64,
    }
}

impl Registry {
    pub fn new(
        domain: Option<String>,
        wall: Duration,
        services: Option<Services>,
    ) -> Arc<Registry> {
        Arc::new(Registry {
            workers: RwLock::new(HashMap::new()),
            domain: domain.map(|d| d.trim_matches('.').to_ascii_lowercase()),
            wall,
            services,
            queues: watch::channel(BTreeSet::new()).0,
        })
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
        let h = WorkerHandle::spawn(def, self.wall, self.services.clone())?;
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
        if let Some(domain) = &self.domain
            && let Some(name) = host.strip_suffix(&format!(".workers.{domain}"))
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
        let defs: Vec<WorkerDef> = rows.iter().map(def_of).collect();
        let names: BTreeSet<String> = defs.iter().map(|d| d.name.clone()).collect();
        for def in defs {
            let name = def.name.clone();
            if let Err(e) = self.install(def) {
                crate::log::error(&format!("starting worker {name}"), &e);
            }
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
                if let Err(e) = self.install(def_of(r)) {
                    crate::log::error(&format!("starting worker {name}"), &e);
                }
            }
            None => self.remove(name),
        }
        Ok(())
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
