//! Retention of finished workflow instances: an instance that is complete, errored or
//! terminated is deleted once it finished longer ago than the retention (default 30 days,
//! `stack.toml` `[runner] workflow_retention_days`), and its steps, events, hooks and history go
//! with it (the schema's `ON DELETE CASCADE`). Every replica prunes, at start and then every
//! minute, in batches, so no transaction holds many rows; an instance waiting, paused or running
//! is never touched.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::db::{DbError, conn};

/// Days a finished instance is kept by default.
pub const DEFAULT_DAYS: f64 = 30.0;
/// How often a replica prunes.
const EVERY: Duration = Duration::from_secs(60);
/// Instances deleted per transaction.
const BATCH: i64 = 1000;

/// Delete the instances that finished more than `keep` ago; how many went.
pub async fn prune(pool: &Pool, keep: Duration) -> Result<u64, DbError> {
    let c = conn(pool).await?;
    let mut total = 0;
    loop {
        let n = c
            .execute(
                "DELETE FROM runner.workflow_instances WHERE id IN (
                    SELECT id FROM runner.workflow_instances
                     WHERE status IN ('complete', 'errored', 'terminated')
                       AND finished_at < now() - make_interval(secs => $1::float8)
                     LIMIT $2
                       FOR UPDATE SKIP LOCKED)",
                &[&keep.as_secs_f64(), &BATCH],
            )
            .await
            .map_err(|e| DbError::new("pruning finished workflow instances", e))?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Prune at start, then every minute, until `shutdown`; a failure is logged and tried again
/// next time.
pub async fn run(pool: Pool, keep: Duration, shutdown: CancellationToken) {
    loop {
        match prune(&pool, keep).await {
            Ok(0) => {}
            Ok(n) => crate::log::info(
                "pruned finished workflow instances",
                serde_json::json!({"instances": n, "older_than_secs": keep.as_secs_f64()}),
            ),
            Err(e) => crate::log::error("pruning finished workflow instances", &e),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
