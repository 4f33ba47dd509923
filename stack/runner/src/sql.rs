//! The runner's schema, as SQL files embedded in the library.
//!
//! The SQL lives in the workspace's `migrations/` (`V2__runner.sql`, `V3__…`, `V18__…`, `V19__…`:
//! platform migrations);
//! [`apply`] runs it for tests and `runner migrate`. Every statement is idempotent.
//! [`CRON_QUEUE`] is the queue name the schema fixes for cron ticks; it lives here, beside the
//! schema, so that the queue code, its stats and `serve` all read it from below them.

/// `(name, sql)` in the order they must run: the platform migration that `stackctl migrate`
/// applies (refinery, embedded from the workspace's `migrations/`), reused here verbatim so the
/// runner's own `migrate` and its tests cannot drift from it.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("V2__runner", SCHEMA_SQL),
    ("V3__runner_limits_secrets", LIMITS_SECRETS_SQL),
    ("V18__runner_workflows", WORKFLOWS_SQL),
    ("V19__runner_workflow_hooks", WORKFLOW_HOOKS_SQL),
];

/// Jobs and `runner.enqueue(...)`, cron schedules and ticks, workers and `runner.deploy(...)`.
pub const SCHEMA_SQL: &str = include_str!("../../../migrations/V2__runner.sql");

/// Per-worker limits, the env.DB binding and sealed secrets.
pub const LIMITS_SECRETS_SQL: &str =
    include_str!("../../../migrations/V3__runner_limits_secrets.sql");

/// Durable workflows: instances, steps, events, hooks, history, `runner.workflow_create(...)`.
pub const WORKFLOWS_SQL: &str = include_str!("../../../migrations/V18__runner_workflows.sql");

/// Workflow hooks (`step.createHook`): the step kind `hook`.
pub const WORKFLOW_HOOKS_SQL: &str =
    include_str!("../../../migrations/V19__runner_workflow_hooks.sql");

/// Jobs that advance workflow instances (payload `{"instance": ID}`): the queue the workflow
/// schema's `runner.workflow_wake(...)` fills.
pub const WORKFLOW_QUEUE: &str = "workflows";

/// Cron ticks of schedules bound to a worker land in this queue (payload has `worker`): the
/// schema's default queue of `runner.schedules`, the one `runner.deploy(...)` names.
pub const CRON_QUEUE: &str = "cron";

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
