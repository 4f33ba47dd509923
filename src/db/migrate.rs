//! Applying migrations: the advisory lock, the history tables, one transaction per migration.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_postgres::Client;
use tokio_postgres::error::{ErrorPosition, SqlState};

use super::plan::{Applied, MigrationFile};
use super::sql::{self, Statement};
use crate::error::UserError;

/// The key of the advisory lock that serialises `stackctl migrate` runs on a database ("stackctl").
pub const LOCK_KEY: i64 = 0x7374_6163_6b63_746c;

/// Which history a migration belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// `stackctl.platform_migrations`: the embedded platform migrations, applied by the superuser.
    Platform,
    /// `stackctl.app_migrations`: the application's migrations, applied by db_migrator.
    App,
}

impl History {
    pub fn table(self) -> &'static str {
        match self {
            History::Platform => "stackctl.platform_migrations",
            History::App => "stackctl.app_migrations",
        }
    }
}

/// Takes the migration lock, waiting at most `wait` (PostgreSQL's lock_timeout bounds the wait).
pub async fn lock(client: &Client, wait: Duration) -> Result<()> {
    client
        .batch_execute(&format!("SET lock_timeout = {}", wait.as_millis().max(1)))
        .await
        .context("setting lock_timeout")?;
    let taken = client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await;
    client
        .batch_execute("RESET lock_timeout")
        .await
        .context("resetting lock_timeout")?;
    match taken {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            let holder = client
                .query_opt(
                    "SELECT pid, coalesce(application_name, ''), backend_start::text FROM pg_stat_activity \
                     WHERE pid = (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                     AND objid = ($1 & 4294967295)::oid LIMIT 1)",
                    &[&LOCK_KEY],
                )
                .await
                .ok()
                .flatten()
                .map(|r| format!(" (held by backend pid {}, {}, connected at {})", r.get::<_, i32>(0), r.get::<_, String>(1), r.get::<_, String>(2)))
                .unwrap_or_default();
            Err(UserError::new(format!(
                "another migration run has held the migration lock for more than {}s{holder}",
                wait.as_secs()
            ))
            .hint("wait for it to finish, then run `stackctl migrate` again")
            .into())
        }
        Err(e) => Err(e).context("taking the migration lock"),
    }
}

/// Creates the `stackctl` schema and both history tables (refinery's format) when missing.
pub async fn ensure_history(client: &Client) -> Result<()> {
    let mut sql = String::from(
        "CREATE SCHEMA IF NOT EXISTS stackctl; REVOKE ALL ON SCHEMA stackctl FROM PUBLIC;",
    );
    for t in [History::Platform.table(), History::App.table()] {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {t} (version int4 PRIMARY KEY, name varchar(255), applied_on varchar(255), checksum varchar(255));"
        ));
    }
    client
        .batch_execute(&sql)
        .await
        .context("creating the migration history tables in schema stackctl")
}

/// The history rows, or none when the table does not exist yet.
pub async fn applied(client: &Client, history: History) -> Result<Vec<Applied>> {
    let table = history.table();
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .with_context(|| format!("looking for {table}"))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(&format!("SELECT version, coalesce(name, ''), coalesce(applied_on, ''), coalesce(checksum, '0') FROM {table} ORDER BY version"), &[])
        .await
        .with_context(|| format!("reading {table}"))?;
    rows.iter()
        .map(|r| {
            let checksum: String = r.get(3);
            Ok(Applied {
                version: r.get(0),
                name: r.get(1),
                applied_on: r.get(2),
                checksum: checksum.parse().with_context(|| {
                    format!(
                        "{table}: version {} has checksum `{checksum}`",
                        r.get::<_, i32>(0)
                    )
                })?,
            })
        })
        .collect()
}

/// Applies one migration in its own transaction, with `lock_timeout`; records it in `history`.
/// On failure the transaction rolls back and the error names the file, the line and Postgres's
/// message.
pub async fn apply(
    client: &mut Client,
    m: &MigrationFile,
    stmts: &[Statement],
    history: History,
    lock_timeout: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    let tx = client
        .transaction()
        .await
        .with_context(|| format!("starting the transaction of {}", m.file))?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        lock_timeout.as_millis().max(1)
    ))
    .await
    .context("setting lock_timeout")?;
    for s in stmts {
        if let Err(e) = tx.batch_execute(&s.text).await {
            let _ = tx.rollback().await;
            return Err(statement_error(m, s, &e, history, lock_timeout));
        }
    }
    let applied_on = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tx.execute(
        &format!(
            "INSERT INTO {} (version, name, applied_on, checksum) VALUES ($1, $2, $3, $4)",
            history.table()
        ),
        &[&m.version, &m.name, &applied_on, &m.checksum.to_string()],
    )
    .await
    .with_context(|| format!("recording {} in {}", m.file, history.table()))?;
    tx.commit()
        .await
        .with_context(|| format!("committing {}", m.file))?;
    Ok(started.elapsed())
}

fn statement_error(
    m: &MigrationFile,
    s: &Statement,
    e: &tokio_postgres::Error,
    history: History,
    lock_timeout: Duration,
) -> anyhow::Error {
    let Some(db) = e.as_db_error() else {
        return anyhow::anyhow!("{}:{}: {e}", m.file, s.line)
            .context(format!("migration {} failed; it was rolled back", m.file));
    };
    let line = match db.position() {
        Some(ErrorPosition::Original(p)) => sql::line_of_position(s, *p as usize),
        _ => s.line,
    };
    let mut msg = format!(
        "migration {} failed at line {line} and was rolled back; later migrations were not applied\n  {}:{line}: {}: {} (SQLSTATE {})",
        m.file,
        m.file,
        db.severity(),
        db.message(),
        db.code().code()
    );
    if let Some(d) = db.detail() {
        msg.push_str(&format!("\n  detail: {d}"));
    }
    if let Some(h) = db.hint() {
        msg.push_str(&format!("\n  postgres hint: {h}"));
    }
    let err = UserError::new(msg);
    let err = if *db.code() == SqlState::LOCK_NOT_AVAILABLE {
        err.hint(format!(
            "another session held a lock this migration needs for more than {}s; retry when it is idle, or pass a longer --lock-timeout",
            lock_timeout.as_secs()
        ))
    } else if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE && history == History::App {
        err.hint(format!(
            "your migrations run as db_migrator, which owns the application schemas but is no superuser; \
             change {} to stay within that (docs/database.md, Known limits)",
            m.file
        ))
    } else {
        err.hint(format!("fix {} and run `stackctl migrate` again", m.file))
    };
    err.into()
}
