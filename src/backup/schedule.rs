//! The `backup` service: full and differential backups on cron schedules from stack.toml, with no
//! stackctl needed on the host (so a stack Dokploy deploys is backed up too).
//!
//! The service runs `stackctl backup schedule --full CRON --diff CRON` in our stackctl image as
//! the `postgres` user, with the data volume (read-only), PostgreSQL's socket directory and the
//! repository mounted: pgBackRest runs right there, as it would beside the server. When both
//! schedules fall due at once, the full backup runs. Each result is one JSON line on stdout (for
//! Loki): `{"time", "level", "msg", "type", "label", "seconds", "database_bytes",
//! "repository_bytes"}`, or `"error"` when pgBackRest failed; a failed backup is logged and the
//! schedule goes on. The last line is also kept in [`STATUS_FILE`]: the service's health check
//! (`stackctl backup health`) reports unhealthy while the last scheduled backup has failed.

use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, SubsecRound, Utc};
use croner::Cron;
use serde_json::json;

use super::{Kind, STANZA};
use crate::cron::parse as parse_cron;

/// The next time after `now` that `cron` falls due.
fn next_after(cron: &Cron, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    cron.find_next_occurrence(&now.trunc_subsecs(0), false)
        .with_context(|| format!("the cron expression `{cron}` never falls due again"))
}

/// Which backup runs next, and when: the earlier of the two; the full one when they meet.
pub fn next_backup(full: &Cron, diff: &Cron, now: DateTime<Utc>) -> Result<(Kind, DateTime<Utc>)> {
    let (f, d) = (next_after(full, now)?, next_after(diff, now)?);
    Ok(if f <= d {
        (Kind::Full, f)
    } else {
        (Kind::Diff, d)
    })
}

/// Where the schedule keeps its last log line, for the health check.
pub const STATUS_FILE: &str = "/tmp/stackctl-backup-status.json";

fn log_line(value: serde_json::Value) {
    println!("{value}");
    let path = std::path::Path::new(STATUS_FILE);
    if let Err(e) =
        crate::files::write_atomic(path, value.to_string().as_bytes(), crate::files::PUBLIC)
    {
        eprintln!("backup schedule: cannot write {STATUS_FILE}: {e:#}");
    }
}

/// The health check of the `backup` service: healthy while the schedule runs and its last
/// backup, if any, succeeded.
pub fn health() -> Result<()> {
    let text = std::fs::read_to_string(STATUS_FILE).with_context(|| {
        format!("the backup schedule is not running ({STATUS_FILE} is missing)")
    })?;
    let last: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("reading {STATUS_FILE}"))?;
    if last["level"] == "error" {
        anyhow::bail!(
            "the last scheduled backup failed at {}: {}",
            last["time"].as_str().unwrap_or("?"),
            last["error"].as_str().unwrap_or("?")
        );
    }
    println!("{}", last["msg"].as_str().unwrap_or("ok"));
    Ok(())
}

/// Runs the schedule until SIGTERM or SIGINT.
pub async fn run(full: &str, diff: &str) -> Result<()> {
    let full = parse_cron("backup.full_schedule", full)?;
    let diff = parse_cron("backup.diff_schedule", diff)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    log_line(json!({
        "time": Utc::now().to_rfc3339(), "level": "info", "msg": "backup schedule started",
        "full": full.pattern.to_string(), "diff": diff.pattern.to_string(),
    }));
    loop {
        let (kind, at) = next_backup(&full, &diff, Utc::now())?;
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        log_line(take(kind).await);
    }
}

/// The repository passphrase pgBackRest reads from its environment.
const CIPHER_PASS: &str = "PGBACKREST_REPO1_CIPHER_PASS";

/// `pgbackrest`, with the repository passphrase from `PGBACKREST_REPO1_CIPHER_PASS_FILE` when the
/// service gets it as a Swarm secret (pgBackRest itself reads only the variable).
fn pgbackrest() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("pgbackrest");
    if std::env::var_os(CIPHER_PASS).is_none() {
        match protocol::secret_env::var(CIPHER_PASS) {
            Ok(Some(pass)) => {
                cmd.env(CIPHER_PASS, pass);
            }
            Ok(None) => {}
            // pgBackRest then fails for want of the passphrase, and its error is logged too.
            Err(e) => eprintln!("{e}"),
        }
    }
    cmd
}

/// One backup with pgBackRest, as its JSON log line.
async fn take(kind: Kind) -> serde_json::Value {
    let started = Instant::now();
    let out = pgbackrest()
        .arg(format!("--stanza={STANZA}"))
        .arg(format!("--type={}", kind.as_str()))
        .arg("backup")
        .stdin(Stdio::null())
        .output()
        .await;
    let seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    let failed = |error: String| {
        json!({
            "time": Utc::now().to_rfc3339(), "level": "error", "msg": "backup failed",
            "type": kind.as_str(), "seconds": seconds, "error": error,
        })
    };
    match out {
        Err(e) => return failed(format!("running pgbackrest: {e}")),
        Ok(o) if !o.status.success() => {
            let text = String::from_utf8_lossy(if o.stderr.is_empty() {
                &o.stdout
            } else {
                &o.stderr
            })
            .into_owned();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            return failed(tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        Ok(_) => {}
    }
    let newest = pgbackrest()
        .args([&format!("--stanza={STANZA}"), "--output=json", "info"])
        .stdin(Stdio::null())
        .output()
        .await
        .ok()
        .and_then(|o| super::info::parse(&o.stdout, STANZA).ok())
        .and_then(|i| i.sets().pop());
    let mut line = json!({
        "time": Utc::now().to_rfc3339(), "level": "info", "msg": "backup finished",
        "type": kind.as_str(), "seconds": seconds,
    });
    if let Some(s) = newest {
        line["label"] = json!(s.label);
        line["database_bytes"] = json!(s.database_bytes);
        line["repository_bytes"] = json!(s.repository_bytes);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_full_backup_wins_when_both_fall_due_and_the_diff_runs_between() {
        let full = parse_cron("f", "0 3 * * 0").unwrap(); // Sundays
        let diff = parse_cron("d", "0 3 * * *").unwrap(); // every day
        // 2026-12-05 is a Saturday: the next is Saturday's diff, then Sunday's full.
        let (k, t) = next_backup(&full, &diff, at("2026-12-05T01:00:00Z")).unwrap();
        assert_eq!((k, t), (Kind::Diff, at("2026-12-05T03:00:00Z")));
        let (k, t) = next_backup(&full, &diff, at("2026-12-05T03:00:00Z")).unwrap();
        assert_eq!((k, t), (Kind::Full, at("2026-12-06T03:00:00Z")));
    }
}
