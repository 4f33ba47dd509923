//! The role bootstrap (SQL in `bootstrap.sql`): roles, memberships, grants, default privileges and
//! passwords, made true again on every run.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::scram;

const SQL: &str = include_str!("bootstrap.sql");
/// PgBouncer's auth_query function, run after the bootstrap (postgate's tests run it too).
pub const POOLER_AUTH_SQL: &str = include_str!("pooler_auth.sql");

/// The logins the bootstrap manages, each with the `.env` key of its password.
pub const LOGINS: &[(&str, &str)] = &[
    ("db_migrator", "MIGRATOR_PASSWORD"),
    ("db_authenticator", "AUTHENTICATOR_PASSWORD"),
    ("postgate", "POSTGATE_DB_PASSWORD"),
    ("runner", "RUNNER_DB_PASSWORD"),
    ("app", "APP_DB_PASSWORD"),
    ("pooler_auth", "POOLER_AUTH_PASSWORD"),
    ("monitor", "MONITOR_DB_PASSWORD"),
];

/// Every role the bootstrap manages (logins first).
pub const ROLES: &[&str] = &[
    "db_migrator",
    "db_authenticator",
    "postgate",
    "runner",
    "app",
    "pooler_auth",
    "monitor",
    "app_user",
    "web_anon",
    "read_only",
    "anon",
    "authenticated",
    "service_role",
];

/// Runs the bootstrap in one transaction; returns what it changed (empty when all was in order).
/// `passwords` maps each login to its plain password; only SCRAM verifiers are sent.
pub async fn run(
    client: &mut Client,
    passwords: &BTreeMap<String, String>,
    lock_timeout: Duration,
) -> Result<Vec<String>> {
    let verifiers: serde_json::Map<String, serde_json::Value> = LOGINS
        .iter()
        .map(|(role, _)| {
            let pw = passwords.get(*role).map(String::as_str).unwrap_or_default();
            (
                role.to_string(),
                serde_json::Value::String(scram::verifier(role, pw)),
            )
        })
        .collect();
    let verifiers = serde_json::Value::Object(verifiers).to_string();
    let tx = client
        .transaction()
        .await
        .context("starting the role bootstrap")?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        lock_timeout.as_millis().max(1)
    ))
    .await?;
    tx.batch_execute(SQL)
        .await
        .context("defining the role bootstrap")?;
    let rows = tx
        .query(
            "SELECT * FROM pg_temp.stackctl_bootstrap($1::text::jsonb)",
            &[&verifiers],
        )
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => anyhow::anyhow!(
                "the role bootstrap failed: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            ),
            None => anyhow::Error::new(e).context("running the role bootstrap"),
        })?;
    tx.batch_execute(POOLER_AUTH_SQL)
        .await
        .context("defining the pooler's auth_query function (pooler.auth_lookup)")?;
    tx.commit().await.context("committing the role bootstrap")?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}
