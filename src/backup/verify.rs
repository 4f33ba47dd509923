//! `stackctl backup verify`: proves the newest backup restores, in a scratch container, without
//! touching the stack.
//!
//! One one-off container of our PostgreSQL image runs `verify.sh` (read it for the steps) with
//! the repository, pgbackrest.conf and a scratch volume of its own mounted; the scratch volume is
//! removed afterwards, whether the checks passed or not. The script prints one JSON object per
//! database (indexes checked by amcheck, rows per table), read here into [`VerifyReport`].

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::restore::{passphrase, repo_task};
use crate::config::Stack;
use crate::engine::{self, Docker};
use crate::error::UserError;
use crate::secrets::EnvFile;

const SCRIPT: &str = include_str!("verify.sh");

/// What the scratch server found in one database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseCheck {
    pub database: String,
    /// B-tree indexes `bt_index_check(index, heapallindexed => true)` passed on.
    pub indexes_checked: u64,
    /// Rows per table (`schema.table`).
    pub tables: BTreeMap<String, u64>,
}

/// What `backup verify` reports.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The backup set restored (the newest).
    pub label: String,
    pub databases: Vec<DatabaseCheck>,
    pub seconds: f64,
}

impl VerifyReport {
    pub fn indexes(&self) -> u64 {
        self.databases.iter().map(|d| d.indexes_checked).sum()
    }
    pub fn tables(&self) -> usize {
        self.databases.iter().map(|d| d.tables.len()).sum()
    }
    pub fn rows(&self) -> u64 {
        self.databases.iter().flat_map(|d| d.tables.values()).sum()
    }
}

/// The JSON lines the script prints, one per database.
fn parse_checks(stdout: &str) -> Result<Vec<DatabaseCheck>> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("reading verify's line {l}")))
        .collect()
}

pub async fn verify(docker: &Docker, stack: &Stack, env: &EnvFile) -> Result<VerifyReport> {
    let started = Instant::now();
    let pass = passphrase(stack, env)?;
    let p = stack.project();
    let info = super::restore::read_repository(docker, stack, &pass)
        .await?
        .info;
    let Some(newest) = info.sets().pop() else {
        bail!(
            UserError::new("the repository holds no backup to verify")
                .hint("take one with `stackctl backup`")
        );
    };
    // One scratch volume per run (two verifies may run at once); `down --volumes` finds one a
    // killed run left behind by its project label.
    let scratch = format!("{p}_backup-verify-{}", engine::invocation_id());
    docker
        .create_volume(
            &scratch,
            engine::resource_labels(p, "volume", "backup-verify-scratch"),
        )
        .await?;
    let mut task = repo_task(stack, "backup-verify", &pass, &scratch);
    task.cmd = vec!["sh".into(), "-c".into(), SCRIPT.into()];
    let outcome = engine::run_task(docker, &task).await;
    docker.remove_volume(&scratch).await?;
    let out = outcome?;
    if out.code != 0 {
        bail!(
            UserError::new(format!(
                "backup {} did not verify (exit code {}):\n{}",
                newest.label,
                out.code,
                out.stderr_tail(20)
            ))
            .hint("the repository or the backup is damaged: take a new full backup and keep this one for inspection")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let databases = parse_checks(&stdout)?;
    if databases.is_empty() {
        bail!(
            "verify's scratch server reported no database:\n{}",
            out.stderr_tail(20)
        );
    }
    Ok(VerifyReport {
        label: newest.label,
        databases,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_lines_read_as_one_check_per_database() {
        let out = "noise\n{\"database\":\"app\",\"indexes_checked\":7,\"tables\":{\"public.t\":3,\"runner.jobs\":0}}\n\
                   {\"database\":\"postgres\",\"indexes_checked\":0,\"tables\":{}}\n";
        let checks = parse_checks(out).unwrap();
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].tables["public.t"], 3);
        let r = VerifyReport {
            label: "x".into(),
            databases: checks,
            seconds: 0.0,
        };
        assert_eq!((r.indexes(), r.tables(), r.rows()), (7, 2, 3));
        assert!(parse_checks("{not json").is_err());
    }
}
