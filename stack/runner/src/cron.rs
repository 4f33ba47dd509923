//! Cron triggers kept in `runner.schedules`.
//!
//! Every replica runs [`run_cron`]; each pass claims the due schedules with
//! `FOR UPDATE SKIP LOCKED`, and for each one, in the same transaction, records the tick in
//! `runner.cron_ticks` (primary key `(schedule, tick)`, a second guard), enqueues one durable
//! job and moves `next_tick` past now. A tick therefore fires once across all replicas.
//!
//! Missed-tick policy: if several ticks fell due while no runner was up, the schedule fires
//! **once**, for the most recent due tick, with `missed` = the number of older ticks skipped.
//! No stampede, and the worker can see that it was late.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use deadpool_postgres::Pool;
use serde_json::json;
use tokio_postgres::GenericClient;
use tokio_util::sync::CancellationToken;

use crate::db::{DbError, conn};
use crate::metrics::Metrics;

/// A cron expression or time zone that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error("invalid cron expression {expr:?}: {reason}")]
    Expression { expr: String, reason: String },
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("no next time for cron expression {0:?}")]
    NoNext(String),
}

/// A parsed schedule: expression (5 fields, or 6 with seconds first) plus time zone.
#[derive(Debug, Clone)]
pub struct Spec {
    cron: Cron,
    tz: Tz,
    expr: String,
}

impl Spec {
    pub fn parse(expr: &str, tz: &str) -> Result<Spec, CronError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| CronError::Expression {
                expr: expr.to_string(),
                reason: e.to_string(),
            })?;
        let tz = Tz::from_str(tz).map_err(|_| CronError::TimeZone(tz.to_string()))?;
        Ok(Spec {
            cron,
            tz,
            expr: expr.to_string(),
        })
    }

    /// The first tick strictly after `t` (ticks are whole seconds).
    pub fn next_after(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, CronError> {
        use chrono::SubsecRound;
        self.cron
            .find_next_occurrence(&t.trunc_subsecs(0).with_timezone(&self.tz), false)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| CronError::NoNext(self.expr.clone()))
    }

    /// Which tick to fire when `due` is due at `now`: the latest tick `<= now`, and how many
    /// older ticks (from `due` on) are skipped.
    pub fn coalesce(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> (DateTime<Utc>, i32) {
        let mut fire = due;
        let mut missed = 0;
        while missed < 100_000 {
            match self.next_after(fire) {
                Ok(n) if n <= now => {
                    fire = n;
                    missed += 1;
                }
                _ => break,
            }
        }
        (fire, missed)
    }
}

/// Create or replace a schedule. Validates the expression and time zone first.
pub async fn upsert_schedule(
    client: &impl GenericClient,
    name: &str,
    expr: &str,
    tz: &str,
    queue: &str,
    payload: &serde_json::Value,
) -> Result<(), anyhow::Error> {
    let spec = Spec::parse(expr, tz)?;
    let next = spec.next_after(Utc::now())?;
    client
        .execute(
            "INSERT INTO runner.schedules (name, cron, timezone, queue, payload, next_tick)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone,
                 queue = excluded.queue, payload = excluded.payload,
                 next_tick = excluded.next_tick, enabled = true, updated_at = now()",
            &[&name, &expr, &tz, &queue, payload, &next],
        )
        .await
        .map_err(|e| DbError::new(format!("saving schedule {name}"), e))?;
    Ok(())
}

/// One pass: fire every due schedule once. Returns the number of ticks fired.
pub async fn fire_due(client: &mut tokio_postgres::Client, owner: &str) -> Result<u64, DbError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| DbError::new("starting the cron transaction", e))?;
    let rows = tx
        .query(
            "SELECT name, cron, timezone, queue, payload, next_tick, now()
               FROM runner.schedules
              WHERE enabled AND (next_tick IS NULL OR next_tick <= now())
              ORDER BY next_tick NULLS FIRST
              LIMIT 100
                FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await
        .map_err(|e| DbError::new("claiming due schedules", e))?;
    let mut fired = 0;
    for row in rows {
        let name: String = row.get(0);
        let expr: String = row.get(1);
        let tz: String = row.get(2);
        let queue: String = row.get(3);
        let payload: serde_json::Value = row.get(4);
        let due: Option<DateTime<Utc>> = row.get(5);
        let now: DateTime<Utc> = row.get(6);
        let spec = match Spec::parse(&expr, &tz) {
            Ok(s) => s,
            Err(e) => {
                crate::log::error(&format!("schedule {name} disabled"), &e);
                tx.execute(
                    "UPDATE runner.schedules SET enabled = false, updated_at = now() WHERE name = $1",
                    &[&name],
                )
                .await
                .map_err(|e| DbError::new(format!("disabling schedule {name}"), e))?;
                continue;
            }
        };
        let next = spec.next_after(now).ok();
        if let Some(due) = due {
            let (tick, missed) = spec.coalesce(due, now);
            let inserted = tx
                .execute(
                    "INSERT INTO runner.cron_ticks (schedule, tick, missed, fired_by)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&name, &tick, &missed, &owner],
                )
                .await
                .map_err(|e| DbError::new(format!("recording tick of {name}"), e))?;
            if inserted == 1 {
                let mut body = match payload {
                    serde_json::Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                body.insert("schedule".into(), json!(name));
                body.insert("cron".into(), json!(expr));
                body.insert(
                    "scheduledTime".into(),
                    json!(tick.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                );
                body.insert("missed".into(), json!(missed));
                let body = serde_json::Value::Object(body);
                tx.execute(
                    "WITH j AS (SELECT runner.enqueue($1, $2) AS id)
                     UPDATE runner.cron_ticks SET job_id = j.id FROM j
                      WHERE schedule = $3 AND tick = $4",
                    &[&queue, &body, &name, &tick],
                )
                .await
                .map_err(|e| DbError::new(format!("enqueueing tick of {name}"), e))?;
                fired += 1;
            }
            tx.execute(
                "UPDATE runner.schedules SET last_tick = $2, next_tick = $3 WHERE name = $1",
                &[&name, &tick, &next],
            )
            .await
            .map_err(|e| DbError::new(format!("advancing schedule {name}"), e))?;
        } else {
            tx.execute(
                "UPDATE runner.schedules SET next_tick = $2 WHERE name = $1",
                &[&name, &next],
            )
            .await
            .map_err(|e| DbError::new(format!("starting schedule {name}"), e))?;
        }
    }
    tx.commit()
        .await
        .map_err(|e| DbError::new("committing fired ticks", e))?;
    Ok(fired)
}

/// Fire due schedules every `every` until `shutdown`.
pub async fn run_cron(
    pool: Pool,
    owner: String,
    every: Duration,
    metrics: std::sync::Arc<Metrics>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let res = async {
            let mut c = conn(&pool).await?;
            fire_due(&mut c, &owner).await
        }
        .await;
        match res {
            Ok(n) => metrics.cron_fired(n),
            Err(e) => crate::log::error("cron pass failed", &e),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_optional_and_zones_apply() {
        let s = Spec::parse("*/5 * * * * *", "UTC").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:01.5Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            s.next_after(t).unwrap().to_rfc3339(),
            "2026-01-01T00:00:05+00:00"
        );
        let s = Spec::parse("0 9 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            s.next_after(t).unwrap().to_rfc3339(),
            "2026-01-01T08:00:00+00:00"
        );
        assert!(Spec::parse("0 9 * * *", "Mars/Olympus").is_err());
        assert!(Spec::parse("nope", "UTC").is_err());
    }

    #[test]
    fn missed_ticks_coalesce_into_one() {
        let s = Spec::parse("* * * * *", "UTC").unwrap();
        let due = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:10:30Z")
            .unwrap()
            .to_utc();
        let (tick, missed) = s.coalesce(due, now);
        assert_eq!(tick.to_rfc3339(), "2026-01-01T00:10:00+00:00");
        assert_eq!(missed, 10);
        assert_eq!(s.coalesce(due, due), (due, 0));
    }
}
