//! Backups with pgBackRest: the stanza, `backup`, `backup list`, `backup verify` (verify.rs) and
//! `restore` (restore.rs).
//!
//! The stack's postgres service archives its WAL continuously to the repository (the `backups`
//! volume, encrypted with `BACKUP_PASSPHRASE`; see the Compose template and pgbackrest.conf).
//! Everything here runs pgBackRest inside our PostgreSQL image, never on the host: in the running
//! postgres container (stanza, backup, info), or in a one-off container of the same image with
//! the data and repository volumes mounted (restore). pgBackRest's output is read as JSON
//! (`info --output=json`, typed in `info`), never as text.

mod info;
pub mod logical;
mod restore;
mod schedule;
mod verify;

pub use info::{SetRow, WalRange, Window, human_bytes};
pub use restore::{RestoreOptions, RestoreTarget, parse_time, restore};
pub use schedule::{health as schedule_health, run as run_schedule};
pub use verify::verify;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Stack;
use crate::engine::{self, Docker};
use crate::error::UserError;

/// The one stanza of a stack (pgBackRest's name for a cluster and its repository contents).
pub use crate::config::STANZA;

/// The Compose volume that holds the repository: `down --volumes` keeps it (only
/// `--include-backups --yes` removes it), so a wrong `down` never takes the backups with the data.
pub const VOLUME: &str = "backups";
/// Where the postgres service (and a restore's one-off container) has pgbackrest.conf.
pub const CONFIG_PATH: &str = "/etc/pgbackrest/pgbackrest.conf";
/// The service that runs PostgreSQL.
const SERVICE: &str = "postgres";
/// How long a backup (or restore) may run.
const LONG: Duration = Duration::from_secs(6 * 3600);
/// How long a quick pgBackRest command (info, stanza-create) may run.
const SHORT: Duration = Duration::from_secs(120);

/// The kind of backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Every file.
    Full,
    /// What changed since the last full backup.
    Diff,
    /// What changed since the last backup of any kind.
    Incr,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Diff => "diff",
            Kind::Incr => "incr",
        }
    }
}

/// Runs `argv` as the `postgres` user in the running postgres container; returns its stdout,
/// or an error with the last lines of its stderr.
async fn exec_as_postgres(
    docker: &Docker,
    container: &str,
    what: &str,
    argv: &[&str],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let mut cmd: Vec<String> = [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cmd.extend(argv.iter().map(|s| s.to_string()));
    let out = docker.exec_capture(container, cmd, None, timeout).await?;
    if out.code != Some(0) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let text = if stderr.trim().is_empty() {
            stdout
        } else {
            stderr
        };
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(12)..].join("\n");
        bail!(UserError::new(format!(
            "{what} failed in {container} (exit code {}):\n{tail}",
            out.code.map_or("?".into(), |c| c.to_string())
        )));
    }
    Ok(out.stdout)
}

/// `pgbackrest --stanza=main ARGS` in the running postgres container.
async fn pgbackrest(
    docker: &Docker,
    container: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let stanza = format!("--stanza={STANZA}");
    let mut argv = vec!["pgbackrest", stanza.as_str()];
    argv.extend_from_slice(args);
    let what = format!("pgbackrest {}", args.last().copied().unwrap_or(""));
    exec_as_postgres(docker, container, &what, &argv, timeout).await
}

/// The running postgres container of the stack, or a clear error.
async fn postgres_container(docker: &Docker, stack: &Stack) -> Result<String> {
    engine::running_container(docker, stack.project(), SERVICE).await
}

/// Creates the stanza if the repository has none yet (idempotent: pgBackRest accepts a second
/// `stanza-create` on a matching repository). `stackctl up` calls it once PostgreSQL is healthy,
/// so WAL archiving, which fails until the stanza exists, starts working.
///
/// The image's entrypoint creates it too (for stacks no stackctl manages): when the two meet,
/// one `stanza-create` may fail on the other's lock, so a failure is accepted when the stanza
/// then reads as valid (pgBackRest status `ok` or `no valid backups`).
pub async fn ensure_stanza(docker: &Docker, stack: &Stack) -> Result<()> {
    let c = postgres_container(docker, stack).await?;
    stanza_in(docker, &c).await
}

/// [`ensure_stanza`] in container `c`. A stanza that reads as valid is left alone: `stanza-create`
/// takes the archive lock, which the asynchronous archive-push holds while it works, so on a busy
/// server it would fail for nothing.
async fn stanza_in(docker: &Docker, c: &str) -> Result<()> {
    if let Ok(info) = read_info(docker, c).await
        && matches!(info.status.code, 0 | 2)
    {
        return Ok(());
    }
    let Err(e) = pgbackrest(docker, c, &["stanza-create"], SHORT).await else {
        return Ok(());
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    match read_info(docker, c).await {
        Ok(info) if matches!(info.status.code, 0 | 2) => Ok(()),
        _ => Err(e),
    }
}

/// The repository's contents for `stanza`, as pgBackRest reports them.
async fn read_info(docker: &Docker, container: &str) -> Result<info::StanzaInfo> {
    let json = pgbackrest(docker, container, &["--output=json", "info"], SHORT).await?;
    info::parse(&json, STANZA)
}

/// One SQL value from the local server, as text (`psql -At`; our own queries, one column).
async fn sql_value(docker: &Docker, container: &str, sql: &str) -> Result<String> {
    let argv = [
        "psql", "-X", "-At", "-U", "postgres", "-d", "postgres", "-c", sql,
    ];
    let out = exec_as_postgres(docker, container, "psql", &argv, SHORT).await?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// When PostgreSQL last archived a WAL segment (`pg_stat_archiver`), if it ever did.
async fn last_archived(docker: &Docker, container: &str) -> Result<Option<DateTime<Utc>>> {
    let v = sql_value(
        docker,
        container,
        "select coalesce(extract(epoch from last_archived_time)::bigint, 0) from pg_stat_archiver",
    )
    .await?;
    Ok(v.parse::<i64>()
        .ok()
        .filter(|e| *e > 0)
        .and_then(|e| DateTime::from_timestamp(e, 0)))
}

/// What `stackctl backup` reports.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub database_bytes: u64,
    pub repository_bytes: u64,
    pub seconds: f64,
}

/// Takes a backup now, in the running postgres container (creating the stanza first if needed).
pub async fn backup(docker: &Docker, stack: &Stack, kind: Kind) -> Result<BackupReport> {
    let c = postgres_container(docker, stack).await?;
    stanza_in(docker, &c).await?;
    let before: Vec<String> = read_info(docker, &c)
        .await?
        .sets()
        .into_iter()
        .map(|s| s.label)
        .collect();
    let started = Instant::now();
    let kind_arg = format!("--type={}", kind.as_str());
    pgbackrest(docker, &c, &[&kind_arg, "backup"], LONG).await?;
    let seconds = started.elapsed().as_secs_f64();
    let sets = read_info(docker, &c).await?.sets();
    let Some(new) = sets.into_iter().rev().find(|s| !before.contains(&s.label)) else {
        bail!("pgbackrest backup succeeded but `pgbackrest info` lists no new backup set");
    };
    Ok(BackupReport {
        label: new.label,
        kind: new.kind,
        database_bytes: new.database_bytes,
        repository_bytes: new.repository_bytes,
        seconds,
    })
}

/// What `stackctl backup list` reports.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub stanza: String,
    /// pgBackRest's status of the stanza.
    pub status: String,
    pub sets: Vec<SetRow>,
    /// The archived WAL, per database.
    pub wal: Vec<WalRange>,
    /// The times `restore --to` accepts; `None` without any backup.
    pub restorable: Option<Window>,
}

/// Every backup set and the restorable window (its end: PostgreSQL's last archived segment).
pub async fn list(docker: &Docker, stack: &Stack) -> Result<Listing> {
    let c = postgres_container(docker, stack).await?;
    let info = read_info(docker, &c).await?;
    let archived = last_archived(docker, &c).await?;
    Ok(Listing {
        stanza: info.name.clone(),
        status: info.status(),
        sets: info.sets(),
        wal: info.wal_ranges(),
        restorable: info.window(archived),
    })
}

/// What `stackctl status` says about backups.
#[derive(Debug)]
pub struct Freshness {
    /// The newest backup set, if any.
    pub newest: Option<SetRow>,
    /// When PostgreSQL last archived a WAL segment.
    pub last_archived: Option<DateTime<Utc>>,
    /// What an operator should look at: no backup yet, one missed by the schedule, archiving
    /// failing.
    pub warnings: Vec<String>,
}

/// How long after its scheduled time a backup may still be running before `status` warns.
const SCHEDULE_GRACE: chrono::TimeDelta = chrono::TimeDelta::hours(2);

/// The backup state of the running stack (`None` when postgres is not running).
pub async fn freshness(docker: &Docker, stack: &Stack) -> Result<Option<Freshness>> {
    let Ok(c) = postgres_container(docker, stack).await else {
        return Ok(None);
    };
    let info = read_info(docker, &c).await?;
    let v = sql_value(
        docker,
        &c,
        "select coalesce(extract(epoch from last_archived_time)::bigint, 0) || ' ' || \
         coalesce(extract(epoch from last_failed_time)::bigint, 0) from pg_stat_archiver",
    )
    .await?;
    let mut times = v.split(' ').map(|t| {
        t.parse::<i64>()
            .ok()
            .filter(|e| *e > 0)
            .and_then(|e| DateTime::from_timestamp(e, 0))
    });
    let (last_archived, last_failed) = (times.next().flatten(), times.next().flatten());
    let newest = info.sets().pop();
    let b = &stack.file.backup;
    let due = [&b.full_schedule, &b.diff_schedule]
        .into_iter()
        .filter_map(|expr| crate::cron::parse("", expr).ok())
        .filter_map(|cron| cron.find_previous_occurrence(&Utc::now(), false).ok())
        .max();
    Ok(Some(Freshness {
        warnings: warnings(newest.as_ref(), due, last_archived, last_failed, Utc::now()),
        newest,
        last_archived,
    }))
}

/// The warnings for a stack whose newest backup is `newest`, whose schedule was last due at
/// `due`, at `now` (pure).
fn warnings(
    newest: Option<&SetRow>,
    due: Option<DateTime<Utc>>,
    last_archived: Option<DateTime<Utc>>,
    last_failed: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut w = Vec::new();
    match (newest, due) {
        (None, _) => w.push("no backup yet: take one with `stackctl backup`".to_string()),
        (Some(n), Some(due)) if n.finished < due && now - due > SCHEDULE_GRACE => w.push(format!(
            "the newest backup ({}) is older than the schedule allows (a backup was due at {}): \
             see `stackctl logs backup`",
            n.finished.format("%Y-%m-%d %H:%M UTC"),
            due.format("%Y-%m-%d %H:%M UTC")
        )),
        _ => {}
    }
    if let Some(f) = last_failed
        && last_archived.is_none_or(|a| f > a)
    {
        w.push(format!(
            "WAL archiving is failing (last failure at {}): see `stackctl logs postgres`",
            f.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    w
}

/// `3h 12m`, `45s`: an age for people.
pub fn age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn set(finished: &str) -> SetRow {
        SetRow {
            label: "x".into(),
            kind: "full".into(),
            started: at(finished),
            finished: at(finished),
            database_bytes: 0,
            repository_bytes: 0,
            wal_start: None,
            wal_stop: None,
        }
    }

    #[test]
    fn status_warns_of_no_backup_a_missed_one_and_failing_archiving() {
        let now = at("2026-12-03T12:00:00Z");
        assert!(warnings(None, None, None, None, now)[0].contains("no backup yet"));
        // Due at 03:00, newest from yesterday: missed.
        let old = set("2026-12-02T03:10:00Z");
        let due = Some(at("2026-12-03T03:00:00Z"));
        let w = warnings(Some(&old), due, None, None, now);
        assert!(w[0].contains("older than the schedule allows"), "{w:?}");
        // Due a moment ago: it may still be running.
        let w = warnings(Some(&old), due, None, None, at("2026-12-03T03:30:00Z"));
        assert!(w.is_empty(), "{w:?}");
        // Taken after it was due: fine.
        let fresh = set("2026-12-03T03:20:00Z");
        assert!(warnings(Some(&fresh), due, None, None, now).is_empty());
        // A failure newer than the last success.
        let w = warnings(
            Some(&fresh),
            due,
            Some(at("2026-12-03T11:00:00Z")),
            Some(at("2026-12-03T11:30:00Z")),
            now,
        );
        assert!(w[0].contains("archiving is failing"), "{w:?}");
        assert!(
            warnings(
                Some(&fresh),
                due,
                Some(at("2026-12-03T11:40:00Z")),
                Some(at("2026-12-03T11:30:00Z")),
                now
            )
            .is_empty()
        );
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(chrono::TimeDelta::seconds(45)), "45s");
        assert_eq!(age(chrono::TimeDelta::seconds(3 * 3600 + 720)), "3h 12m");
        assert_eq!(age(chrono::TimeDelta::seconds(2 * 86400 + 3600)), "2d 1h");
    }
}
