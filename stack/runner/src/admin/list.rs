//! `runner worker list`: the deployed workers, as JSON rows or a table.

use serde::Serialize;
use tokio_postgres::Client;

use super::{AdminError, db};

/// One row of `worker list`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRow {
    pub name: String,
    pub version: Option<i32>,
    pub routes: Vec<String>,
    pub queues: Vec<String>,
    pub cron: Option<String>,
    pub db_tenant: Option<String>,
    pub secrets: Vec<String>,
    pub updated_at: String,
}

pub async fn list(client: &Client) -> Result<Vec<WorkerRow>, AdminError> {
    let rows = client
        .query(
            "SELECT w.name, w.active_version, w.routes, w.queues, s.cron, w.db_tenant,
                    coalesce((SELECT array_agg(x.name ORDER BY x.name) FROM runner.worker_secrets x
                               WHERE x.worker = w.name AND x.name NOT LIKE '\\_\\_%'), '{}'),
                    to_char(w.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
               FROM runner.workers w
               LEFT JOIN runner.schedules s ON s.name = 'worker:' || w.name
              ORDER BY w.name",
            &[],
        )
        .await
        .map_err(db("listing workers"))?;
    Ok(rows
        .iter()
        .map(|r| WorkerRow {
            name: r.get(0),
            version: r.get(1),
            routes: r.get(2),
            queues: r.get(3),
            cron: r.get(4),
            db_tenant: r.get(5),
            secrets: r.get(6),
            updated_at: r.get(7),
        })
        .collect())
}

pub fn render_list(rows: &[WorkerRow]) -> String {
    let mut out = format!(
        "{:<24} {:>7} {:<28} {:<16} {:<14} {}\n",
        "NAME", "VERSION", "ROUTES", "QUEUES", "DB TENANT", "SECRETS"
    );
    for w in rows {
        out.push_str(&format!(
            "{:<24} {:>7} {:<28} {:<16} {:<14} {}\n",
            w.name,
            w.version.map(|v| v.to_string()).unwrap_or_default(),
            w.routes.join(","),
            w.queues.join(","),
            w.db_tenant.as_deref().unwrap_or("-"),
            w.secrets.join(","),
        ));
    }
    out
}
