//! Every connection postgate makes: the service pool (token lookups, as the login `postgate`) and
//! one small pool per tenant login (`pgt_<tenant>_<code>_login`), created on first use.

use crate::pipeline;
use crate::token::{self, Permissions};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt as _;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

/// How long a cached token is trusted at most (a safety net: NOTIFY evicts it at once).
const CACHE_TTL: Duration = Duration::from_secs(60);
/// How often `last_used_at` is written, in one statement for all tokens used meanwhile.
const LAST_USED_FLUSH: Duration = Duration::from_secs(5);
/// The channel the tokens trigger notifies.
pub const CHANNEL: &str = "postgate_tokens";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("parsing the database URL: {0}")]
    Url(tokio_postgres::Error),
    #[error("building a connection pool: {0}")]
    Pool(String),
    #[error("getting a connection for {login}: {source}")]
    Connect {
        login: String,
        source: deadpool_postgres::PoolError,
    },
    #[error("looking up a token: {0}")]
    Lookup(tokio_postgres::Error),
    #[error("getting a read session for {login}: {message}")]
    Pipe { login: String, message: String },
}

/// What a valid token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub tenant: String,
    pub permissions: Permissions,
}

impl TokenInfo {
    pub fn schema(&self) -> &str {
        &self.tenant
    }
    pub fn role(&self) -> String {
        token::role_name(&self.tenant, self.permissions)
    }
    pub fn login(&self) -> String {
        token::login_name(&self.tenant, self.permissions)
    }
}

/// Token lookups cached in memory, trusted only while LISTEN is up; `last_used` stamps pending.
#[derive(Default)]
struct Shared {
    cache: Mutex<HashMap<Vec<u8>, (TokenInfo, Instant)>>,
    /// Bumped by every notification: a lookup that raced one is not cached.
    generation: AtomicU64,
    listening: AtomicBool,
    used: Mutex<HashSet<i64>>,
}

pub struct Db {
    shared: Arc<Shared>,
    service: Pool,
    base: tokio_postgres::Config,
    /// Where LISTEN connects: the service login's URL, or a direct one when `base` goes through a
    /// transaction pooler (which cannot hold a LISTEN session).
    listen: tokio_postgres::Config,
    pepper: Vec<u8>,
    pool_size: usize,
    tenants: Mutex<HashMap<String, Pool>>,
    /// Sessions for one-sync-point reads, per tenant login (`crate::pipeline`); only when the
    /// database is reached over TCP.
    pipes: Mutex<HashMap<String, pipeline::Pool>>,
}

fn pool(cfg: tokio_postgres::Config, size: usize) -> Result<Pool, DbError> {
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            // No reset round trip between uses. Each request is one transaction that starts with
            // SET LOCAL of role, search_path and timeouts and ends in COMMIT or ROLLBACK, and
            // behind a transaction pooler the next transaction may run on another server session
            // anyway, so a per-checkout reset would clean nothing reliably. What a statement could
            // leave in a session (a plain SET, an advisory lock) stays with the same login: the
            // same tenant and permission set.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

impl Db {
    pub fn new(database_url: &str, pepper: Vec<u8>, pool_size: usize) -> Result<Db, DbError> {
        let mut base: tokio_postgres::Config = database_url.parse().map_err(DbError::Url)?;
        base.application_name("postgate");
        Ok(Db {
            shared: Arc::new(Shared::default()),
            service: pool(base.clone(), pool_size)?,
            listen: base.clone(),
            base,
            pepper,
            pool_size,
            tenants: Mutex::new(HashMap::new()),
            pipes: Mutex::new(HashMap::new()),
        })
    }

    /// LISTEN for token changes over `url` (the service login, straight to PostgreSQL) instead of
    /// the service URL: needed when that one goes through a transaction-mode pooler.
    pub fn set_listen_url(&mut self, url: &str) -> Result<(), DbError> {
        let mut cfg: tokio_postgres::Config = url.parse().map_err(DbError::Url)?;
        cfg.application_name("postgate-listen");
        self.listen = cfg;
        Ok(())
    }

    pub fn pepper(&self) -> &[u8] {
        &self.pepper
    }

    /// A connection as the tenant login of `info`.
    pub async fn tenant_client(&self, info: &TokenInfo) -> Result<Object, DbError> {
        let login = info.login();
        let pool = pool_of(&self.tenants, &login, || {
            let mut cfg = self.base.clone();
            cfg.user(&login)
                .password(token::login_password(&self.pepper, &login));
            pool(cfg, self.pool_size)
        })?;
        pool.get()
            .await
            .map_err(|source| DbError::Connect { login, source })
    }

    /// A one-sync-point read session as the tenant login of `info`, when the database is reached
    /// over TCP (else `None`: reads take the general path).
    pub async fn pipe_session(
        &self,
        info: &TokenInfo,
    ) -> Result<Option<deadpool::managed::Object<pipeline::Manager>>, DbError> {
        let (Some(tokio_postgres::config::Host::Tcp(host)), Some(dbname)) =
            (self.base.get_hosts().first(), self.base.get_dbname())
        else {
            return Ok(None);
        };
        let login = info.login();
        let pool = pool_of(&self.pipes, &login, || {
            let target = pipeline::Target {
                host: host.clone(),
                port: self.base.get_ports().first().copied().unwrap_or(5432),
                user: login.clone(),
                password: token::login_password(&self.pepper, &login).into_bytes(),
                dbname: dbname.to_string(),
            };
            pipeline::pool(target, self.pool_size).map_err(DbError::Pool)
        })?;
        pool.get().await.map(Some).map_err(|e| DbError::Pipe {
            login,
            message: e.to_string(),
        })
    }

    /// The token whose HMAC is `hash`, if it exists, is not revoked and has not expired. Served
    /// from memory while the LISTEN connection is up (a revocation evicts it on every replica).
    pub async fn lookup(&self, hash: &[u8]) -> Result<Option<TokenInfo>, DbError> {
        let sh = &self.shared;
        if sh.listening.load(Ordering::SeqCst) {
            let cache = sh.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((info, until)) = cache.get(hash)
                && Instant::now() < *until
            {
                sh.used
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(info.id);
                return Ok(Some(info.clone()));
            }
        }
        let generation = sh.generation.load(Ordering::SeqCst);
        let client = self
            .service
            .get()
            .await
            .map_err(|source| DbError::Connect {
                login: "service".into(),
                source,
            })?;
        let row = client
            .query_opt(
                "SELECT id, tenant, permissions, \
                        extract(epoch FROM expires_at - now())::float8 \
                   FROM postgate.tokens \
                  WHERE hash = $1 AND revoked_at IS NULL \
                    AND (expires_at IS NULL OR expires_at > now())",
                &[&hash],
            )
            .await
            .map_err(DbError::Lookup)?;
        let Some(row) = row else { return Ok(None) };
        let perms: Vec<String> = row.get(2);
        let Ok(permissions) = Permissions::from_list(&perms) else {
            return Ok(None);
        };
        let info = TokenInfo {
            id: row.get(0),
            tenant: row.get(1),
            permissions,
        };
        sh.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.id);
        let left: Option<f64> = row.get(3);
        let ttl = match left {
            Some(secs) => CACHE_TTL.min(Duration::from_secs_f64(secs.max(0.0))),
            None => CACHE_TTL,
        };
        if sh.listening.load(Ordering::SeqCst) && sh.generation.load(Ordering::SeqCst) == generation
        {
            sh.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hash.to_vec(), (info.clone(), Instant::now() + ttl));
        }
        Ok(Some(info))
    }

    /// Background work until `shutdown`: LISTEN for token changes (reconnecting with a backoff;
    /// the cache is bypassed while not listening) and flush `last_used_at` in batches.
    pub fn background(
        &self,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        let cfg = self.listen.clone();
        let service = self.service.clone();
        async move {
            let flusher = flush_last_used(shared.clone(), service, shutdown.clone());
            let listener = async {
                let mut backoff = Duration::from_millis(100);
                while !shutdown.is_cancelled() {
                    match listen(&shared, &cfg, &shutdown).await {
                        Ok(()) => backoff = Duration::from_millis(100),
                        Err(e) => tracing::warn!("listening for token changes: {e}"),
                    }
                    forget_all(&shared);
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            };
            tokio::join!(flusher, listener);
        }
    }

    /// Can the service login reach the database?
    pub async fn ready(&self) -> bool {
        match self.service.get().await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }
}

fn forget_all(shared: &Shared) {
    shared.listening.store(false, Ordering::SeqCst);
    shared.generation.fetch_add(1, Ordering::SeqCst);
    shared
        .cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

/// One LISTEN session: returns when the connection ends or on shutdown.
async fn listen(
    shared: &Shared,
    cfg: &tokio_postgres::Config,
    shutdown: &CancellationToken,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = cfg.connect(NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    let listen_sql = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&listen_sql);
    tokio::pin!(listen);
    // Drive the connection while LISTEN runs.
    loop {
        tokio::select! {
            r = &mut listen => { r?; break; }
            m = messages.next() => match m {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
    // Anything cached before LISTEN was up may be stale.
    forget_all(shared);
    shared.listening.store(true, Ordering::SeqCst);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = messages.next() => match m {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    shared.generation.fetch_add(1, Ordering::SeqCst);
                    let mut cache = shared.cache.lock().unwrap_or_else(|p| p.into_inner());
                    match hex::decode(n.payload()) {
                        Ok(hash) => { cache.remove(&hash); }
                        // Not ours (anyone may NOTIFY): drop everything, it is only a cache.
                        Err(_) => cache.clear(),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}

async fn flush_last_used(shared: Arc<Shared>, service: Pool, shutdown: CancellationToken) {
    loop {
        let stop = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(LAST_USED_FLUSH) => false,
        };
        let ids: Vec<i64> = shared
            .used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        if !ids.is_empty() {
            let result = match service.get().await {
                Ok(c) => c
                    .execute(
                        "UPDATE postgate.tokens SET last_used_at = now() WHERE id = ANY($1)",
                        &[&ids],
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                tracing::warn!("writing last_used_at: {e}");
            }
        }
        if stop {
            return;
        }
    }
}

/// The pool of `login` in `pools`, made by `make` on its first use.
fn pool_of<P: Clone>(
    pools: &Mutex<HashMap<String, P>>,
    login: &str,
    make: impl FnOnce() -> Result<P, DbError>,
) -> Result<P, DbError> {
    let mut pools = pools.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = pools.get(login) {
        return Ok(p.clone());
    }
    let p = make()?;
    pools.insert(login.to_string(), p.clone());
    Ok(p)
}
