//! The runner's schema, as SQL files embedded in the library.
//!
//! At merge time these move into the platform migrations (`migrations/`); until then
//! [`apply`] runs them for tests and `runner migrate`. Every file is idempotent.

/// `(name, sql)` in the order they must run.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_queue", QUEUE_SQL),
    ("002_cron", CRON_SQL),
    ("003_workers", WORKERS_SQL),
];

/// Jobs table, `runner.enqueue(...)`, the NOTIFY trigger.
pub const QUEUE_SQL: &str = include_str!("../sql/001_queue.sql");
/// Cron schedules and fired ticks.
pub const CRON_SQL: &str = include_str!("../sql/002_cron.sql");
/// Workers, versions, `runner.deploy(...)`, the NOTIFY trigger.
pub const WORKERS_SQL: &str = include_str!("../sql/003_workers.sql");

/// Apply every migration in one transaction, serialised by an advisory lock.
pub async fn apply(client: &mut tokio_postgres::Client) -> Result<(), crate::db::DbError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| crate::db::DbError::new("starting the schema transaction", e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('runner.schema'))",
        &[],
    )
    .await
    .map_err(|e| crate::db::DbError::new("taking the schema lock", e))?;
    for (name, sql) in MIGRATIONS {
        tx.batch_execute(sql)
            .await
            .map_err(|e| crate::db::DbError::new(format!("applying runner schema {name}"), e))?;
    }
    tx.commit()
        .await
        .map_err(|e| crate::db::DbError::new("committing the runner schema", e))
}
