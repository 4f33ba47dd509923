//! Connection pool and the one error type for SQL done by the runner.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// A database call failed; `what` names what was attempted.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct DbError {
    pub what: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl DbError {
    pub fn new(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        DbError {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Build a pool for `url` (libpq style key=value or postgres:// URL). Connects lazily.
pub fn pool(url: &str, max_size: usize) -> Result<Pool, DbError> {
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| DbError::new("parsing the database URL", e))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(|e| DbError::new("building the connection pool", e))
}

/// Take a connection from the pool.
pub async fn conn(pool: &Pool) -> Result<deadpool_postgres::Object, DbError> {
    pool.get()
        .await
        .map_err(|e| DbError::new("getting a database connection", e))
}
