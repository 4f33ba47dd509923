//! Every connection postgate makes: the service pool (token lookups, as the login `postgate`) and
//! one small pool per tenant login (`pgt_<tenant>_<code>_login`), created on first use.

use crate::token::{self, Permissions};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio_postgres::NoTls;

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

pub struct Db {
    service: Pool,
    base: tokio_postgres::Config,
    pepper: Vec<u8>,
    pool_size: usize,
    tenants: Mutex<HashMap<String, Pool>>,
}

fn pool(cfg: tokio_postgres::Config, size: usize) -> Result<Pool, DbError> {
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            // DISCARD-like reset between uses: nothing a client left in the session survives.
            recycling_method: RecyclingMethod::Clean,
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
            service: pool(base.clone(), pool_size)?,
            base,
            pepper,
            pool_size,
            tenants: Mutex::new(HashMap::new()),
        })
    }

    pub fn pepper(&self) -> &[u8] {
        &self.pepper
    }

    /// A connection as the tenant login of `info`.
    pub async fn tenant_client(&self, info: &TokenInfo) -> Result<Object, DbError> {
        let login = info.login();
        let pool = {
            let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&login) {
                Some(p) => p.clone(),
                None => {
                    let mut cfg = self.base.clone();
                    cfg.user(&login)
                        .password(token::login_password(&self.pepper, &login));
                    let p = pool(cfg, self.pool_size)?;
                    map.insert(login.clone(), p.clone());
                    p
                }
            }
        };
        pool.get()
            .await
            .map_err(|source| DbError::Connect { login, source })
    }

    /// The token whose HMAC is `hash`, if it exists, is not revoked and has not expired.
    /// `last_used_at` is stamped at most once a minute per token, not once per query.
    pub async fn lookup(&self, hash: &[u8]) -> Result<Option<TokenInfo>, DbError> {
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
                        last_used_at IS NULL OR last_used_at < now() - interval '60 seconds' \
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
        let id: i64 = row.get(0);
        if row.get::<_, bool>(3) {
            // Best effort; a failure here must not fail the request.
            if let Err(e) = client
                .execute(
                    "UPDATE postgate.tokens SET last_used_at = now() WHERE id = $1",
                    &[&id],
                )
                .await
            {
                tracing::warn!("stamping last_used_at: {e}");
            }
        }
        Ok(Some(TokenInfo {
            id,
            tenant: row.get(1),
            permissions,
        }))
    }

    /// Can the service login reach the database?
    pub async fn ready(&self) -> bool {
        match self.service.get().await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }
}
