//! What callers do with workflow instances (a worker's binding, the HTTP API): create, read the
//! status with its steps, send an event, pause, resume, terminate. Each is one SQL transaction;
//! errors the caller can fix come back as [`ApiError::Bad`] with PostgreSQL's message.

use deadpool_postgres::Pool;
use serde_json::{Value, json};

use crate::db::{DbError, conn};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input or a state that forbids it (unknown workflow or instance, malformed id, a
    /// finished instance): the message says which.
    #[error("{0}")]
    Bad(String),
    /// No such instance.
    #[error("unknown workflow instance {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn sql_error(what: &'static str) -> impl Fn(tokio_postgres::Error) -> ApiError {
    move |e| match e.as_db_error() {
        Some(d)
            if d.code().code().starts_with("P0")
                || d.code().code().starts_with("22")
                || d.code().code().starts_with("23")
                || d.code().code().starts_with("55")
                || d.code().code() == "02000" =>
        {
            match d.hint() {
                Some(h) => ApiError::Bad(format!("{} (hint: {h})", d.message())),
                None => ApiError::Bad(d.message().to_string()),
            }
        }
        _ => ApiError::Db(DbError::new(what, e)),
    }
}

/// Start an instance of `workflow` (or return the existing one with that id). Its id.
pub async fn create(
    pool: &Pool,
    workflow: &str,
    id: Option<&str>,
    params: &Value,
) -> Result<String, ApiError> {
    let c = conn(pool).await?;
    let row = c
        .query_one(
            "SELECT runner.workflow_create($1, $2, $3)",
            &[&workflow, &id, params],
        )
        .await
        .map_err(sql_error("creating a workflow instance"))?;
    Ok(row.get(0))
}

/// Send an event to an instance; the event's id.
pub async fn send_event(pool: &Pool, id: &str, ty: &str, payload: &Value) -> Result<i64, ApiError> {
    let c = conn(pool).await?;
    let row = c
        .query_one(
            "SELECT runner.workflow_send_event($1, $2, $3)",
            &[&id, &ty, payload],
        )
        .await
        .map_err(sql_error("sending a workflow event"))?;
    Ok(row.get(0))
}

/// Deliver one payload to the hook with this token (`step.createHook`): an event of type
/// `hook:<token>` for its instance, which wakes it if a `hook.wait()` waits. The instance's id.
/// An unknown or malformed token is [`ApiError::NotFound`] (which of the two is not said).
pub async fn deliver_hook(pool: &Pool, token: &str, payload: &Value) -> Result<String, ApiError> {
    let unknown = || ApiError::NotFound("hook".into());
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    let mut c = conn(pool).await?;
    let tx = c
        .transaction()
        .await
        .map_err(sql_error("starting a hook delivery"))?;
    let Some(row) = tx
        .query_opt(
            "UPDATE runner.workflow_hooks SET used_at = now() WHERE token = $1
             RETURNING instance_id",
            &[&token],
        )
        .await
        .map_err(sql_error("finding a hook"))?
    else {
        return Err(unknown());
    };
    let id: String = row.get(0);
    tx.execute(
        "SELECT runner.workflow_send_event($1, $2, $3)",
        &[&id, &format!("hook:{token}"), payload],
    )
    .await
    .map_err(sql_error("delivering to a hook"))?;
    tx.commit()
        .await
        .map_err(sql_error("committing a hook delivery"))?;
    Ok(id)
}

/// How many instances each workflow has in each status (for `/metrics`).
pub async fn instance_counts(pool: &Pool) -> Result<Vec<crate::metrics::InstanceCount>, ApiError> {
    let c = conn(pool).await?;
    let rows = c
        .query(
            "SELECT workflow, status, count(*) FROM runner.workflow_instances
              GROUP BY workflow, status ORDER BY workflow, status",
            &[],
        )
        .await
        .map_err(sql_error("counting workflow instances"))?;
    Ok(rows
        .iter()
        .map(|r| crate::metrics::InstanceCount {
            workflow: r.get(0),
            status: r.get(1),
            count: r.get(2),
        })
        .collect())
}

/// The instance's status, output or error, and its steps with their timings.
pub async fn status(pool: &Pool, workflow: Option<&str>, id: &str) -> Result<Value, ApiError> {
    let c = conn(pool).await?;
    let row = c
        .query_opt(
            "SELECT jsonb_build_object(
                'id', i.id, 'workflow', i.workflow, 'status', i.status, 'params', i.params,
                'output', i.output, 'error', i.error, 'runs', i.runs,
                'created_at', i.created_at, 'started_at', i.started_at,
                'finished_at', i.finished_at,
                'steps', coalesce((SELECT jsonb_agg(jsonb_build_object(
                        'name', s.name, 'occurrence', s.occurrence, 'kind', s.kind,
                        'status', s.status, 'attempt', s.attempt, 'output', s.output,
                        'error', s.error, 'started_at', s.started_at,
                        'finished_at', s.finished_at, 'wake_at', s.wake_at,
                        'duration_ms', round(extract(epoch FROM s.finished_at - s.started_at) * 1000))
                        ORDER BY s.seq)
                    FROM runner.workflow_steps s WHERE s.instance_id = i.id), '[]'::jsonb))
               FROM runner.workflow_instances i
              WHERE i.id = $1 AND ($2::text IS NULL OR i.workflow = $2)",
            &[&id, &workflow],
        )
        .await
        .map_err(sql_error("reading a workflow instance"))?;
    row.map(|r| r.get(0))
        .ok_or_else(|| ApiError::NotFound(id.to_string()))
}

/// `pause`, `resume`, `terminate` or `restart`. A paused instance keeps its place: its current
/// job finds it paused and stops, and `resume` enqueues a new one. Finished instances refuse the
/// first three; `restart` (any instance) forgets its steps and taken events and runs it again
/// from the start with the same params.
pub async fn control(pool: &Pool, id: &str, action: &str) -> Result<Value, ApiError> {
    let mut c = conn(pool).await?;
    let tx = c
        .transaction()
        .await
        .map_err(sql_error("starting a workflow control"))?;
    let Some(row) = tx
        .query_opt(
            "SELECT status FROM runner.workflow_instances WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(sql_error("locking a workflow instance"))?
    else {
        return Err(ApiError::NotFound(id.to_string()));
    };
    let status: String = row.get(0);
    let next = match (action, status.as_str()) {
        ("restart", _) => {
            forget_run(&tx, id).await?;
            "queued"
        }
        (_, "complete" | "errored" | "terminated") => {
            return Err(ApiError::Bad(format!(
                "workflow instance {id} is {status}: it cannot {action}"
            )));
        }
        ("pause", _) => "paused",
        ("terminate", _) => "terminated",
        ("resume", "paused") => "queued",
        ("resume", _) => return Ok(json!({"id": id, "status": status})),
        _ => {
            return Err(ApiError::Bad(format!(
                "unknown action {action:?}: pause, resume, terminate or restart"
            )));
        }
    };
    tx.execute(
        "UPDATE runner.workflow_instances SET status = $2, updated_at = now(),
                finished_at = CASE WHEN $2 = 'terminated' THEN now() END
          WHERE id = $1",
        &[&id, &next],
    )
    .await
    .map_err(sql_error("changing a workflow instance's status"))?;
    if next == "queued" {
        tx.execute("SELECT runner.workflow_wake($1)", &[&id])
            .await
            .map_err(sql_error("waking a workflow instance"))?;
    }
    tx.commit()
        .await
        .map_err(sql_error("committing a workflow control"))?;
    Ok(json!({"id": id, "status": next}))
}

/// `restart`: the instance's steps go, the events it took go back to the inbox, and its outcome
/// is cleared, so the next run starts from the top.
async fn forget_run(tx: &tokio_postgres::Transaction<'_>, id: &str) -> Result<(), ApiError> {
    tx.execute(
        "DELETE FROM runner.workflow_steps WHERE instance_id = $1",
        &[&id],
    )
    .await
    .map_err(sql_error("forgetting a workflow instance's steps"))?;
    tx.execute(
        "UPDATE runner.workflow_events SET taken_by_step = NULL, taken_by_occ = NULL,
                taken_at = NULL
          WHERE instance_id = $1",
        &[&id],
    )
    .await
    .map_err(sql_error("returning a workflow instance's events"))?;
    tx.execute(
        "UPDATE runner.workflow_instances SET output = NULL, error = NULL, started_at = NULL
          WHERE id = $1",
        &[&id],
    )
    .await
    .map_err(sql_error("clearing a workflow instance's outcome"))?;
    Ok(())
}
