//! Durable workflows: an instance advances as jobs of the `workflows` queue. One job runs the
//! instance's `run(event, step)` from the top on its worker's engine, replaying recorded steps
//! from the database ([`store`]) and running the first new one(s); the run ends complete,
//! errored, or suspended on a timer or an event, in which case a new job is enqueued for the
//! wake-up time and the engine is free meanwhile (a waiting instance costs only its rows).
//! [`api`] is what callers do with instances ([`admin`]: the operator's CLI over it); [`binding`] serves a worker's `env.BINDING` calls
//! and [`http`] the token-guarded HTTP API; [`retention`] deletes finished instances in time.

pub mod admin;
pub mod api;
pub mod binding;
pub mod http;
pub mod retention;
pub mod store;

use std::sync::Arc;

use serde_json::json;

use crate::queue::Job;
use crate::registry::Registry;
use store::Outcome;

/// Jobs of the `workflows` queue one replica claims at once: runs of one worker take turns on
/// its engine thread, so a small batch leaves the rest to other replicas.
pub const BATCH: i64 = 16;

/// Advance the instances the `workflows` jobs name, one after the other (each run then has the
/// whole wall time of its worker); one result per job (an `Err` retries the job with the
/// queue's backoff: the database or the worker was unavailable).
pub async fn handle(
    registry: &Arc<Registry>,
    pool: &deadpool_postgres::Pool,
    jobs: &[Job],
) -> Vec<Result<(), String>> {
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(advance(registry, pool, job).await);
    }
    out
}

async fn advance(
    registry: &Arc<Registry>,
    pool: &deadpool_postgres::Pool,
    job: &Job,
) -> Result<(), String> {
    let Some(instance) = job.payload.get("instance").and_then(|v| v.as_str()) else {
        return Ok(());
    };
    let Some(started) = store::start(pool, instance, job.id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let Some(worker) = registry.get(&started.worker) else {
        return Err(format!(
            "worker {} (of workflow {}) is not loaded on this replica",
            started.worker, started.workflow
        ));
    };
    let input = json!({
        // A run that has used half its worker's wall time ends before its next step and goes
        // on in a new run at once, so a long workflow is never cut by the wall-time limit.
        "budget_ms": u64::try_from(worker.def.wall.as_millis() / 2).unwrap_or(u64::MAX),
        "class": started.workflow,
        "instanceId": instance,
        "job": job.id,
        "payload": started.params,
        "timestamp": started.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let outcome = match worker.workflow(input.to_string()).await {
        Ok(out) => match outcome_of(&out) {
            Ran::Outcome(o) => o,
            Ran::Stale => return Ok(()),
            Ran::Retry(e) => return Err(e),
        },
        Err(e @ crate::js::InvokeError::Unavailable { .. }) => return Err(e.to_string()),
        Err(e) => Outcome::Errored(e.to_string()),
    };
    crate::log::line(
        "info",
        "workflow run ended",
        json!({"workflow": started.workflow, "instance": instance, "job": job.id,
        "outcome": match &outcome {
            Outcome::Complete(_) => "complete",
            Outcome::Errored(_) => "errored",
            Outcome::Suspended => "suspended",
        }}),
    );
    store::finish(pool, instance, job.id, &outcome)
        .await
        .map_err(|e| e.to_string())
}

/// What the engine said of one run.
#[derive(Debug, PartialEq)]
enum Ran {
    Outcome(Outcome),
    /// Another job drives the instance now (or it was paused or terminated): nothing to record.
    Stale,
    /// Storage failed mid-run: run the job again later.
    Retry(String),
}

fn outcome_of(out: &str) -> Ran {
    let v: serde_json::Value = match serde_json::from_str(out) {
        Ok(v) => v,
        Err(e) => return Ran::Outcome(Outcome::Errored(format!("bad workflow result: {e}"))),
    };
    let error = || v["error"].as_str().unwrap_or("workflow failed").to_string();
    match v["state"].as_str() {
        Some("complete") => {
            let text = v["output"].as_str().unwrap_or("null");
            if text.len() > store::MAX_JSON {
                return Ran::Outcome(Outcome::Errored(format!(
                    "the workflow's result is {} bytes of JSON, over the {} byte limit",
                    text.len(),
                    store::MAX_JSON
                )));
            }
            Ran::Outcome(Outcome::Complete(
                serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
            ))
        }
        Some("suspended") => Ran::Outcome(Outcome::Suspended),
        Some("stale") => Ran::Stale,
        Some("retry") => Ran::Retry(error()),
        _ => Ran::Outcome(Outcome::Errored(error())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_of_the_engine() {
        assert_eq!(
            outcome_of(r#"{"state":"complete","output":"{\"a\":1}"}"#),
            Ran::Outcome(Outcome::Complete(json!({"a": 1})))
        );
        assert_eq!(
            outcome_of(r#"{"state":"suspended"}"#),
            Ran::Outcome(Outcome::Suspended)
        );
        assert_eq!(outcome_of(r#"{"state":"stale"}"#), Ran::Stale);
        assert_eq!(
            outcome_of(r#"{"state":"errored","error":"boom"}"#),
            Ran::Outcome(Outcome::Errored("boom".into()))
        );
        let big = format!(
            r#"{{"state":"complete","output":"\"{}\""}}"#,
            "x".repeat(1 << 20)
        );
        assert!(
            matches!(outcome_of(&big), Ran::Outcome(Outcome::Errored(e)) if e.contains("limit"))
        );
    }
}
