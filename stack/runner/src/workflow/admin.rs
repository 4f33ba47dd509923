//! `runner workflow list|status|start|pause|resume|terminate|restart|send-event`: the operator's
//! side of workflows, run by `stackctl workflow ...` inside a runner container (as the worker
//! admin is). Every action goes through the same calls as the HTTP API and the bindings
//! ([`super::api`]), so the rules (idempotent create, what a finished instance refuses) are one.

use deadpool_postgres::Pool;
use serde_json::Value;

use super::api::ApiError;
use crate::db::conn;

/// The statuses an instance can have (the migration's CHECK constraint).
pub const STATUSES: &[&str] = &[
    "queued",
    "running",
    "paused",
    "waiting",
    "errored",
    "terminated",
    "complete",
];

/// Instances, newest first: at most `limit`, optionally of one status and one workflow.
pub async fn list(
    pool: &Pool,
    status: Option<&str>,
    workflow: Option<&str>,
    limit: i64,
) -> Result<Vec<Value>, ApiError> {
    if let Some(s) = status.filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::Bad(format!(
            "unknown status {s:?}: one of {}",
            STATUSES.join(", ")
        )));
    }
    if limit < 1 {
        return Err(ApiError::Bad(format!(
            "--limit must be at least 1, not {limit}"
        )));
    }
    let c = conn(pool).await?;
    let rows = c
        .query(
            "SELECT jsonb_build_object(
                'id', i.id, 'workflow', i.workflow, 'status', i.status, 'runs', i.runs,
                'created_at', i.created_at, 'finished_at', i.finished_at,
                'steps', (SELECT count(*) FROM runner.workflow_steps s WHERE s.instance_id = i.id),
                'error', i.error)
               FROM runner.workflow_instances i
              WHERE ($1::text IS NULL OR i.status = $1)
                AND ($2::text IS NULL OR i.workflow = $2)
              ORDER BY i.created_at DESC, i.id
              LIMIT $3",
            &[&status, &workflow, &limit],
        )
        .await
        .map_err(|e| ApiError::Db(crate::db::DbError::new("listing workflow instances", e)))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Parses a `--params`/`--payload` argument: JSON, or a clear error naming the flag.
pub fn json_arg(flag: &str, text: Option<&str>) -> Result<Value, ApiError> {
    match text {
        None => Ok(Value::Null),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| ApiError::Bad(format!("{flag} is not JSON ({e}): {t}"))),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A table of [`list`]'s rows.
pub fn render_list(rows: &[Value]) -> String {
    if rows.is_empty() {
        return "no workflow instances\n".into();
    }
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                text(&r["id"]),
                text(&r["workflow"]),
                text(&r["status"]),
                text(&r["steps"]),
                text(&r["created_at"]),
                text(&r["finished_at"]),
            ]
        })
        .collect();
    table(
        ["ID", "WORKFLOW", "STATUS", "STEPS", "CREATED", "FINISHED"],
        &cells,
    )
}

/// [`api::status`]'s answer for a person: the instance, then one line per step.
pub fn render_status(v: &Value) -> String {
    let mut out = format!(
        "instance  {}\nworkflow  {}\nstatus    {}\nruns      {}\ncreated   {}\nfinished  {}\nparams    {}\n",
        text(&v["id"]),
        text(&v["workflow"]),
        text(&v["status"]),
        text(&v["runs"]),
        text(&v["created_at"]),
        text(&v["finished_at"]),
        text(&v["params"]),
    );
    if !v["output"].is_null() {
        out.push_str(&format!("output    {}\n", text(&v["output"])));
    }
    if !v["error"].is_null() {
        out.push_str(&format!("error     {}\n", text(&v["error"])));
    }
    let steps: Vec<[String; 6]> = v["steps"]
        .as_array()
        .map(|s| s.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            [
                format!("{}#{}", text(&s["name"]), text(&s["occurrence"])),
                text(&s["kind"]),
                text(&s["status"]),
                text(&s["attempt"]),
                match &s["duration_ms"] {
                    Value::Null => "-".into(),
                    d => format!("{d} ms"),
                },
                if s["error"].is_null() {
                    text(&s["wake_at"])
                } else {
                    text(&s["error"])
                },
            ]
        })
        .collect();
    if steps.is_empty() {
        out.push_str("no steps yet\n");
    } else {
        out.push('\n');
        out.push_str(&table(
            [
                "STEP",
                "KIND",
                "STATUS",
                "ATTEMPT",
                "DURATION",
                "WAKE/ERROR",
            ],
            &steps,
        ));
    }
    out
}

fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut width: [usize; N] = head.map(str::len);
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    let mut out = line(head.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_lines_up_and_an_empty_list_says_so() {
        assert_eq!(render_list(&[]), "no workflow instances\n");
        let rows = [
            json!({"id": "a", "workflow": "Checkout", "status": "complete", "steps": 3,
                   "created_at": "2026-12-07T20:00:00Z", "finished_at": null}),
            json!({"id": "order-42", "workflow": "C", "status": "waiting", "steps": 10,
                   "created_at": "2026-12-07T20:00:01Z", "finished_at": null}),
        ];
        let t = render_list(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("ID        WORKFLOW  STATUS    STEPS"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("order-42  C         waiting   10"),
            "{t}"
        );
    }

    #[test]
    fn status_shows_each_step_and_the_error() {
        let v = json!({"id": "x", "workflow": "W", "status": "errored", "runs": 2,
            "params": {"a": 1}, "error": "boom", "output": null,
            "steps": [{"name": "charge", "occurrence": 1, "kind": "do", "status": "errored",
                       "attempt": 5, "duration_ms": 12, "error": "card declined"}]});
        let s = render_status(&v);
        assert!(s.contains("error     boom"), "{s}");
        assert!(s.contains("params    {\"a\":1}"), "{s}");
        assert!(
            s.contains("charge#1  do    errored  5        12 ms     card declined"),
            "{s}"
        );
    }

    #[test]
    fn json_arguments_are_checked() {
        assert_eq!(json_arg("--params", None).unwrap(), Value::Null);
        assert_eq!(
            json_arg("--params", Some("{\"a\":1}")).unwrap(),
            json!({"a": 1})
        );
        let e = json_arg("--payload", Some("{a")).unwrap_err().to_string();
        assert!(e.starts_with("--payload is not JSON"), "{e}");
    }
}
