//! The workflow engine's SQL: what one run of an instance asks of the database, each a
//! transaction that locks the instance row and checks that the job asking is still the one that
//! drives it (a stale run changes nothing). Steps, events and the instance change together with
//! their history rows (the schema's triggers), so a crash leaves either all of a change or none.

use deadpool_postgres::Pool;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_postgres::Transaction;

use crate::db::{DbError, conn};

/// Largest step result or event payload kept (JSON text), as Cloudflare's.
pub const MAX_JSON: usize = 1 << 20;

/// What a run asks the store (`__wf(op, args)` in the engine).
#[derive(Debug, Deserialize)]
pub struct StepArgs {
    /// For log lines.
    #[serde(default)]
    pub workflow: String,
    pub instance: String,
    pub job: i64,
    pub name: String,
    pub occ: i32,
    pub seq: i32,
    /// `do_end`: the attempt that ended (for log lines).
    #[serde(default)]
    pub attempt: Option<i32>,
    /// `do_end`: the step's result (JSON text) when it succeeded.
    #[serde(default)]
    pub output: Option<String>,
    /// `do_end`: the error when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// `do_end`: retry after this many milliseconds (None: the failure is final).
    #[serde(default)]
    pub retry_ms: Option<f64>,
    /// `do_end`: how long the attempt took (milliseconds, for `/metrics`).
    #[serde(default)]
    pub took_ms: Option<f64>,
    /// `sleep`: milliseconds from when the step is first met.
    #[serde(default)]
    pub ms: Option<f64>,
    /// `sleep` (sleepUntil): wake at this time (milliseconds since the epoch).
    #[serde(default)]
    pub until: Option<f64>,
    /// `event`: the event type awaited.
    #[serde(default)]
    pub r#type: Option<String>,
    /// `event`: give up after this many milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<f64>,
    /// The workflows of the worker asking (set by the runner, never read from the script): an
    /// instance of another workflow is out of its reach.
    #[serde(skip)]
    pub allowed: Vec<String>,
}

/// Run one operation for a worker whose workflows are `allowed`; the answer the engine reads
/// back (`{"state": ...}`). A database failure is `{"state": "halt", "reason": "db"}`: the run
/// stops and its job is retried.
pub async fn op(
    pool: &Pool,
    metrics: &crate::metrics::Metrics,
    allowed: &[String],
    op: &str,
    args: &str,
) -> Value {
    let mut args: StepArgs = match serde_json::from_str(args) {
        Ok(a) => a,
        Err(e) => {
            return json!({"state": "halt", "reason": "db", "error": format!("bad step arguments: {e}")});
        }
    };
    args.allowed = allowed.to_vec();
    let r = async {
        let mut c = conn(pool).await?;
        let tx = c
            .transaction()
            .await
            .map_err(|e| DbError::new("starting a workflow step transaction", e))?;
        let out = match op {
            "do_begin" => do_begin(&tx, &args).await?,
            "do_end" => do_end(&tx, &args).await?,
            "sleep" => sleep(&tx, &args).await?,
            "event" => event(&tx, &args).await?,
            "hook" => hook(&tx, &args).await?,
            other => json!({"state": "halt", "reason": "db", "error": format!("unknown step operation {other}")}),
        };
        tx.commit()
            .await
            .map_err(|e| DbError::new("committing a workflow step", e))?;
        Ok::<Value, DbError>(out)
    }
    .await;
    match r {
        Ok(v) => {
            if op == "do_end" && v["state"] != "halt" {
                step_ended(&args, metrics);
            }
            v
        }
        Err(e) => {
            crate::log::error("workflow step storage failed", &e);
            json!({"state": "halt", "reason": "db", "error": "workflow storage failed"})
        }
    }
}

/// One ended attempt of a `step.do`: a JSON line (workflow, instance, step, attempt, outcome)
/// and an observation of `runner_workflow_step_duration_seconds`.
fn step_ended(a: &StepArgs, metrics: &crate::metrics::Metrics) {
    let mut fields = json!({
        "workflow": a.workflow, "instance": a.instance, "step": a.name,
        "occurrence": a.occ, "attempt": a.attempt,
    });
    let (level, msg, outcome) = match (&a.output, a.retry_ms) {
        (Some(_), _) => ("info", "workflow step complete", "complete"),
        (None, Some(ms)) => {
            fields["retry_in_ms"] = json!(ms);
            fields["error"] = json!(a.error);
            ("warn", "workflow step failed, will retry", "retry")
        }
        (None, None) => {
            fields["error"] = json!(a.error);
            ("warn", "workflow step failed", "errored")
        }
    };
    crate::log::line(level, msg, fields);
    let took = std::time::Duration::try_from_secs_f64(a.took_ms.unwrap_or(0.0).max(0.0) / 1000.0)
        .unwrap_or_default();
    metrics.observe_step(&a.workflow, outcome, took);
}

fn db(what: &'static str) -> impl Fn(tokio_postgres::Error) -> DbError {
    move |e| DbError::new(what, e)
}

/// Lock the instance; true when `job` still drives it, it is running, and it is one of the
/// asking worker's workflows.
async fn current(tx: &Transaction<'_>, a: &StepArgs) -> Result<bool, DbError> {
    let row = tx
        .query_opt(
            "SELECT status, job_id FROM runner.workflow_instances
              WHERE id = $1 AND workflow = ANY($2) FOR UPDATE",
            &[&a.instance, &a.allowed],
        )
        .await
        .map_err(db("locking the workflow instance"))?;
    Ok(row.is_some_and(|r| {
        r.get::<_, &str>(0) == "running" && r.get::<_, Option<i64>>(1) == Some(a.job)
    }))
}

/// The recorded step at this position, or at this (name, occurrence).
struct Recorded {
    name: String,
    occ: i32,
    seq: i32,
    kind: String,
    status: String,
    attempt: i32,
    output: Option<Value>,
    error: Option<String>,
    /// wake_at <= now()
    due: bool,
}

/// What was recorded for this step; an error answer when the replay met another step.
async fn recorded(
    tx: &Transaction<'_>,
    a: &StepArgs,
    kind: &str,
) -> Result<Result<Option<Recorded>, Value>, DbError> {
    let rows = tx
        .query(
            "SELECT name, occurrence, seq, kind, status, attempt, output, error,
                    coalesce(wake_at <= now(), true)
               FROM runner.workflow_steps
              WHERE instance_id = $1 AND (seq = $2 OR (name = $3 AND occurrence = $4))
              FOR UPDATE",
            &[&a.instance, &a.seq, &a.name, &a.occ],
        )
        .await
        .map_err(db("reading the recorded step"))?;
    let mut found = None;
    for r in rows {
        let rec = Recorded {
            name: r.get(0),
            occ: r.get(1),
            seq: r.get(2),
            kind: r.get(3),
            status: r.get(4),
            attempt: r.get(5),
            output: r.get(6),
            error: r.get(7),
            due: r.get(8),
        };
        if rec.seq != a.seq || rec.name != a.name || rec.occ != a.occ || rec.kind != kind {
            return Ok(Err(json!({
                "state": "halt", "reason": "mismatch",
                "error": format!(
                    "replay mismatch at step #{}: the recorded run met {} {:?} (occurrence {}) at step #{}, \
                     this run met {} {:?} (occurrence {}); code outside steps must be deterministic",
                    a.seq, rec.kind, rec.name, rec.occ, rec.seq, kind, a.name, a.occ),
            })));
        }
        found = Some(rec);
    }
    Ok(Ok(found))
}

/// Locks and replay check shared by every step operation: `Err(answer)` stops here.
async fn begin(
    tx: &Transaction<'_>,
    a: &StepArgs,
    kind: &str,
) -> Result<Result<Option<Recorded>, Value>, DbError> {
    if !current(tx, a).await? {
        return Ok(Err(json!({"state": "halt", "reason": "stale"})));
    }
    recorded(tx, a, kind).await
}

async fn do_begin(tx: &Transaction<'_>, a: &StepArgs) -> Result<Value, DbError> {
    let rec = match begin(tx, a, "do").await? {
        Ok(r) => r,
        Err(answer) => return Ok(answer),
    };
    let Some(rec) = rec else {
        tx.execute(
            "INSERT INTO runner.workflow_steps (instance_id, name, occurrence, seq, kind, status)
             VALUES ($1, $2, $3, $4, 'do', 'running')",
            &[&a.instance, &a.name, &a.occ, &a.seq],
        )
        .await
        .map_err(db("recording a step start"))?;
        return Ok(json!({"state": "run", "attempt": 1}));
    };
    match rec.status.as_str() {
        "complete" => Ok(json!({"state": "complete", "output": rec.output})),
        "errored" => Ok(json!({"state": "errored", "error": rec.error})),
        "retrying" if !rec.due => Ok(json!({"state": "suspend"})),
        // "retrying" and due, or "running": a run that died mid-step. Another attempt.
        _ => {
            let attempt = rec.attempt + 1;
            tx.execute(
                "UPDATE runner.workflow_steps SET status = 'running', attempt = $4,
                        wake_at = NULL, updated_at = now()
                  WHERE instance_id = $1 AND name = $2 AND occurrence = $3",
                &[&a.instance, &a.name, &a.occ, &attempt],
            )
            .await
            .map_err(db("recording a step retry"))?;
            Ok(json!({"state": "run", "attempt": attempt}))
        }
    }
}

async fn do_end(tx: &Transaction<'_>, a: &StepArgs) -> Result<Value, DbError> {
    if let Err(answer) = begin(tx, a, "do").await? {
        return Ok(answer);
    }
    if let Some(out) = &a.output {
        let v: Value = serde_json::from_str(out).unwrap_or(Value::Null);
        tx.execute(
            "UPDATE runner.workflow_steps SET status = 'complete', output = $4, error = NULL,
                    finished_at = now(), updated_at = now()
              WHERE instance_id = $1 AND name = $2 AND occurrence = $3 AND status = 'running'",
            &[&a.instance, &a.name, &a.occ, &v],
        )
        .await
        .map_err(db("recording a step result"))?;
        return Ok(json!({"state": "ok"}));
    }
    let error = a.error.clone().unwrap_or_else(|| "step failed".to_string());
    match a.retry_ms {
        Some(ms) => {
            tx.execute(
                "UPDATE runner.workflow_steps SET status = 'retrying', error = $4,
                        wake_at = now() + make_interval(secs => $5::float8 / 1000.0), updated_at = now()
                  WHERE instance_id = $1 AND name = $2 AND occurrence = $3 AND status = 'running'",
                &[&a.instance, &a.name, &a.occ, &error, &ms.max(0.0)],
            )
            .await
            .map_err(db("recording a step failure"))?;
            Ok(json!({"state": "suspend"}))
        }
        None => {
            tx.execute(
                "UPDATE runner.workflow_steps SET status = 'errored', error = $4,
                        finished_at = now(), updated_at = now()
                  WHERE instance_id = $1 AND name = $2 AND occurrence = $3 AND status = 'running'",
                &[&a.instance, &a.name, &a.occ, &error],
            )
            .await
            .map_err(db("recording a step failure"))?;
            Ok(json!({"state": "ok"}))
        }
    }
}

async fn sleep(tx: &Transaction<'_>, a: &StepArgs) -> Result<Value, DbError> {
    let rec = match begin(tx, a, "sleep").await? {
        Ok(r) => r,
        Err(answer) => return Ok(answer),
    };
    let due = match rec {
        Some(r) if r.status == "complete" => return Ok(json!({"state": "complete"})),
        Some(r) => r.due,
        None => tx
            .query_one(
                "INSERT INTO runner.workflow_steps
                        (instance_id, name, occurrence, seq, kind, status, wake_at)
                 VALUES ($1, $2, $3, $4, 'sleep', 'waiting',
                         CASE WHEN $6::float8 IS NOT NULL THEN to_timestamp($6::float8 / 1000.0)
                              ELSE now() + make_interval(secs => coalesce($5::float8, 0) / 1000.0) END)
                 RETURNING wake_at <= now()",
                &[&a.instance, &a.name, &a.occ, &a.seq, &a.ms, &a.until],
            )
            .await
            .map_err(db("recording a sleep"))?
            .get(0),
    };
    if !due {
        return Ok(json!({"state": "suspend"}));
    }
    tx.execute(
        "UPDATE runner.workflow_steps SET status = 'complete', finished_at = now(), updated_at = now()
          WHERE instance_id = $1 AND name = $2 AND occurrence = $3",
        &[&a.instance, &a.name, &a.occ],
    )
    .await
    .map_err(db("recording a sleep's end"))?;
    Ok(json!({"state": "complete"}))
}

async fn event(tx: &Transaction<'_>, a: &StepArgs) -> Result<Value, DbError> {
    let rec = match begin(tx, a, "event").await? {
        Ok(r) => r,
        Err(answer) => return Ok(answer),
    };
    match &rec {
        Some(r) if r.status == "complete" => {
            return Ok(json!({"state": "complete", "output": r.output}));
        }
        Some(r) if r.status == "errored" => {
            return Ok(json!({"state": "errored", "error": r.error}));
        }
        _ => {}
    }
    let ty = a.r#type.clone().unwrap_or_default();
    let inbox = tx
        .query_opt(
            "SELECT id, payload, created_at FROM runner.workflow_events
              WHERE instance_id = $1 AND type = $2 AND taken_by_step IS NULL
              ORDER BY id LIMIT 1 FOR UPDATE",
            &[&a.instance, &ty],
        )
        .await
        .map_err(db("reading the events inbox"))?;
    if let Some(ev) = inbox {
        let at: chrono::DateTime<chrono::Utc> = ev.get(2);
        let output = json!({
            "payload": ev.get::<_, Value>(1),
            "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "type": ty,
        });
        tx.execute(
            "UPDATE runner.workflow_events SET taken_by_step = $2, taken_by_occ = $3, taken_at = now()
              WHERE id = $1",
            &[&ev.get::<_, i64>(0), &a.name, &a.occ],
        )
        .await
        .map_err(db("taking an event"))?;
        tx.execute(
            "INSERT INTO runner.workflow_steps
                    (instance_id, name, occurrence, seq, kind, status, event_type, output, finished_at)
             VALUES ($1, $2, $3, $4, 'event', 'complete', $5, $6, now())
             ON CONFLICT (instance_id, name, occurrence) DO UPDATE
                SET status = 'complete', output = excluded.output, finished_at = now(),
                    updated_at = now()",
            &[&a.instance, &a.name, &a.occ, &a.seq, &ty, &output],
        )
        .await
        .map_err(db("recording an event's arrival"))?;
        return Ok(json!({"state": "complete", "output": output}));
    }
    let due = match rec {
        Some(r) => r.due,
        None => tx
            .query_one(
                "INSERT INTO runner.workflow_steps
                        (instance_id, name, occurrence, seq, kind, status, event_type, wake_at)
                 VALUES ($1, $2, $3, $4, 'event', 'waiting', $5,
                         now() + make_interval(secs => $6::float8 / 1000.0))
                 RETURNING wake_at <= now()",
                &[
                    &a.instance,
                    &a.name,
                    &a.occ,
                    &a.seq,
                    &ty,
                    &a.timeout_ms.unwrap_or(86_400_000.0),
                ],
            )
            .await
            .map_err(db("recording a wait for an event"))?
            .get(0),
    };
    if !due {
        return Ok(json!({"state": "suspend"}));
    }
    let error = format!(
        "waitForEvent {:?}: no event of type {ty:?} arrived before the timeout",
        a.name
    );
    tx.execute(
        "UPDATE runner.workflow_steps SET status = 'errored', error = $4, finished_at = now(),
                updated_at = now()
          WHERE instance_id = $1 AND name = $2 AND occurrence = $3",
        &[&a.instance, &a.name, &a.occ, &error],
    )
    .await
    .map_err(db("recording a wait's timeout"))?;
    Ok(json!({"state": "errored", "error": error}))
}

/// `step.createHook`: the hook's token, made once (an unguessable 64 hex digits from
/// PostgreSQL's strong random source) and recorded with the step, so every replay gets the same.
/// After a `restart` (which forgets the steps) the hook keeps its token: URLs handed out still work.
async fn hook(tx: &Transaction<'_>, a: &StepArgs) -> Result<Value, DbError> {
    let rec = match begin(tx, a, "hook").await? {
        Ok(r) => r,
        Err(answer) => return Ok(answer),
    };
    if let Some(r) = rec {
        return Ok(json!({"state": "complete", "output": r.output}));
    }
    let token: String = tx
        .query_one(
            "INSERT INTO runner.workflow_hooks (token, instance_id, step_name, occurrence)
             VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
                     $1, $2, $3)
             ON CONFLICT (instance_id, step_name, occurrence)
                DO UPDATE SET instance_id = excluded.instance_id
             RETURNING token",
            &[&a.instance, &a.name, &a.occ],
        )
        .await
        .map_err(db("recording a hook"))?
        .get(0);
    let output = json!({ "token": token });
    tx.execute(
        "INSERT INTO runner.workflow_steps
                (instance_id, name, occurrence, seq, kind, status, output, finished_at)
         VALUES ($1, $2, $3, $4, 'hook', 'complete', $5, now())",
        &[&a.instance, &a.name, &a.occ, &a.seq, &output],
    )
    .await
    .map_err(db("recording a hook step"))?;
    Ok(json!({"state": "complete", "output": output}))
}

/// The instance a job advances, as the job found it.
#[derive(Debug, Clone)]
pub struct Started {
    pub workflow: String,
    pub worker: String,
    pub params: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Take the instance for `job`: `None` when the job is stale (another job drives it) or the
/// instance is paused or finished; else it is marked running.
pub async fn start(pool: &Pool, instance: &str, job: i64) -> Result<Option<Started>, DbError> {
    let mut c = conn(pool).await?;
    let tx = c
        .transaction()
        .await
        .map_err(db("starting a workflow run"))?;
    let row = tx
        .query_opt(
            "SELECT i.workflow, w.worker, i.params, i.created_at, i.status, i.job_id
               FROM runner.workflow_instances i
               LEFT JOIN runner.workflows w ON w.name = i.workflow
              WHERE i.id = $1 FOR UPDATE OF i",
            &[&instance],
        )
        .await
        .map_err(db("locking the workflow instance"))?;
    let Some(row) = row else { return Ok(None) };
    let status: &str = row.get(4);
    if row.get::<_, Option<i64>>(5) != Some(job)
        || !matches!(status, "queued" | "running" | "waiting")
    {
        return Ok(None);
    }
    let Some(worker) = row.get::<_, Option<String>>(1) else {
        tx.execute(
            "UPDATE runner.workflow_instances SET status = 'errored', updated_at = now(),
                    finished_at = now(), error = 'its workflow is no longer deployed'
              WHERE id = $1",
            &[&instance],
        )
        .await
        .map_err(db("failing an orphaned workflow instance"))?;
        tx.commit().await.map_err(db("committing a workflow run"))?;
        return Ok(None);
    };
    tx.execute(
        "UPDATE runner.workflow_instances SET status = 'running', runs = runs + 1,
                started_at = coalesce(started_at, now()), updated_at = now()
          WHERE id = $1",
        &[&instance],
    )
    .await
    .map_err(db("marking the workflow instance running"))?;
    tx.commit().await.map_err(db("committing a workflow run"))?;
    Ok(Some(Started {
        workflow: row.get(0),
        worker,
        params: row.get(2),
        created_at: row.get(3),
    }))
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete(Value),
    Errored(String),
    /// Waiting on timers or events: woken by a job at the earliest wake-up.
    Suspended,
}

/// Record how the run of `job` ended (nothing if another job drives the instance by now, or it
/// was paused or terminated meanwhile).
pub async fn finish(
    pool: &Pool,
    instance: &str,
    job: i64,
    outcome: &Outcome,
) -> Result<(), DbError> {
    let mut c = conn(pool).await?;
    let tx = c
        .transaction()
        .await
        .map_err(db("starting a workflow outcome"))?;
    let ok = tx
        .query_opt(
            "SELECT 1 FROM runner.workflow_instances
              WHERE id = $1 AND job_id = $2 AND status = 'running' FOR UPDATE",
            &[&instance, &job],
        )
        .await
        .map_err(db("locking the workflow instance"))?
        .is_some();
    if ok {
        match outcome {
            Outcome::Complete(v) => tx
                .execute(
                    "UPDATE runner.workflow_instances SET status = 'complete', output = $2,
                            error = NULL, finished_at = now(), updated_at = now() WHERE id = $1",
                    &[&instance, v],
                )
                .await
                .map(|_| ()),
            Outcome::Errored(e) => tx
                .execute(
                    "UPDATE runner.workflow_instances SET status = 'errored', error = $2,
                            finished_at = now(), updated_at = now() WHERE id = $1",
                    &[&instance, e],
                )
                .await
                .map(|_| ()),
            // Wake at the earliest timer, or now if an awaited event is already in the inbox
            // (it arrived while this run was recording its wait).
            Outcome::Suspended => {
                match tx
                    .execute(
                        "UPDATE runner.workflow_instances SET status = 'waiting', updated_at = now()
                          WHERE id = $1",
                        &[&instance],
                    )
                    .await
                {
                    Ok(_) => tx
                        .execute(
                            "SELECT runner.workflow_wake($1, coalesce(least(
                                (SELECT min(s.wake_at) FROM runner.workflow_steps s
                                  WHERE s.instance_id = $1 AND s.status IN ('waiting', 'retrying')),
                                (SELECT now() FROM runner.workflow_steps s
                                   JOIN runner.workflow_events e
                                     ON e.instance_id = s.instance_id AND e.type = s.event_type
                                    AND e.taken_by_step IS NULL
                                  WHERE s.instance_id = $1 AND s.kind = 'event'
                                    AND s.status = 'waiting'
                                  LIMIT 1)), now()))",
                            &[&instance],
                        )
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                }
            }
        }
        .map_err(db("recording the workflow outcome"))?;
    }
    tx.commit()
        .await
        .map_err(db("committing the workflow outcome"))
}
