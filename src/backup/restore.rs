//! `stackctl restore`: point-in-time (or latest) recovery of the stack's database from its
//! pgBackRest repository.
//!
//! The order, and why:
//! 1. `pgbackrest check` in the running server switches WAL and waits until it is archived, so
//!    the repository covers every transaction committed before the command started; the window
//!    (oldest backup's end .. that moment) is checked against `--to` before anything changes.
//!    The repository is then read in a one-off container with `.env`'s passphrase, as the
//!    restore will read it, so a wrong passphrase is refused before anything stops.
//! 2. Without `--yes`: print the plan, change nothing, exit non-zero.
//! 3. Stop the services (the database last), copy the data volume aside into
//!    `<project>_pgdata-before-restore` (kept if a previous, unfinished restore left it: it then
//!    holds the data from before that restore, the only way back).
//! 4. `pgbackrest restore --delta --type=time --target=T --target-action=promote` in a one-off
//!    container of our image with the data and repository volumes mounted.
//! 5. Start postgres, wait until it has left recovery (promoted), then start the services that
//!    were running and wait until healthy; only then remove the copy set aside. If any of 4-5
//!    fails, the copy is put back, the services are started again, and the error is reported.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use super::{STANZA, Window, exec_as_postgres, pgbackrest, postgres_container, read_info};
use crate::config::Stack;
use crate::engine::{self, Docker, Task, UpOptions};
use crate::error::UserError;
use crate::secrets::EnvFile;

/// Where to recover to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTarget {
    /// A moment inside the restorable window.
    Time(DateTime<Utc>),
    /// The end of the archived WAL.
    Latest,
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: RestoreTarget,
    /// Act; without it only the plan is printed.
    pub yes: bool,
    /// How long each service may take to become healthy.
    pub wait_timeout: Duration,
}

const ASIDE: &str = "pgdata-before-restore";

/// Parses `--to`: RFC 3339 (`2026-12-03T18:15:00Z`, `...+01:00`) or `YYYY-MM-DD HH:MM:SS[.f]`
/// in UTC.
pub fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, UserError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s.trim(), f) {
            return Ok(t.and_utc());
        }
    }
    Err(
        UserError::new(format!("`{s}` is not a time stackctl understands")).hint(
            "write it as RFC 3339, e.g. `2026-12-03T18:15:00Z`, or `2026-12-03 18:15:00` (UTC)",
        ),
    )
}

/// The time as pgBackRest's `--target` (PostgreSQL's recovery_target_time syntax, UTC).
fn target_arg(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Checks `target` against the window (pure).
pub fn check_target(target: RestoreTarget, window: Window) -> std::result::Result<(), UserError> {
    if let RestoreTarget::Time(t) = target
        && (t < window.earliest || t > window.latest)
    {
        return Err(UserError::new(format!(
            "--to {} is outside the restorable window {} .. {}; nothing was changed",
            fmt(t),
            fmt(window.earliest),
            fmt(window.latest)
        ))
        .hint("pick a time inside the window (`stackctl backup list` shows it)"));
    }
    Ok(())
}

/// What `restore` did.
#[derive(Debug)]
pub struct RestoreReport {
    pub target: String,
    pub services: Vec<String>,
    pub seconds: f64,
}

pub async fn restore(
    docker: &Docker,
    stack: &Stack,
    env: &EnvFile,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let project = engine::load_project(stack, env, None)?;
    let c = postgres_container(docker, stack).await.context(
        "restore needs the stack's postgres running to read the repository \
         (a restore after the data volume is lost is not implemented yet)",
    )?;
    let checked_at = Utc::now();
    pgbackrest(docker, &c, &["stanza-create"], super::SHORT).await?;
    pgbackrest(docker, &c, &["check"], super::SHORT).await?;
    let info = read_info(docker, &c).await?;
    let Some(window) = info.window(Some(checked_at)) else {
        bail!(
            UserError::new("the repository holds no backup to restore from; nothing was changed")
                .hint("take one with `stackctl backup`")
        );
    };
    check_target(opts.target, window)?;
    let passphrase = engine::variables(env)
        .get("BACKUP_PASSPHRASE")
        .filter(|v| !v.is_empty())
        .cloned()
        .with_context(|| {
            UserError::new(format!(
                "{} has no BACKUP_PASSPHRASE",
                stack.env_path().display()
            ))
            .hint("run `stackctl init` to add the missing secrets")
        })?;

    preflight(docker, stack, &passphrase).await?;
    let target = match opts.target {
        RestoreTarget::Time(t) => fmt(t),
        RestoreTarget::Latest => "the end of the archived WAL".into(),
    };
    let p = stack.project();
    let (data, aside) = (
        engine::volume_name(p, "pgdata"),
        engine::volume_name(p, ASIDE),
    );
    eprintln!(
        "restore plan: recover the database of project {p} to {target} (window {} .. {}):\n  \
         1. stop the stack's services (postgres last)\n  \
         2. copy volume {data} aside into {aside}\n  \
         3. pgbackrest restore --delta into {data}, replay WAL, promote\n  \
         4. start the services again and wait until healthy; then remove {aside}\n  \
         on failure {aside} is copied back and the services are started again",
        fmt(window.earliest),
        fmt(window.latest)
    );
    if !opts.yes {
        bail!(
            UserError::new("restore not confirmed: nothing was changed")
                .hint("run the same command with --yes to restore")
        );
    }
    eprintln!("restore: stopping services");
    let stopped = engine::stop_services(docker, p, "postgres").await?;
    if docker.volume_exists(&aside).await? {
        eprintln!("restore: keeping {aside} from an unfinished restore (the data before it)");
    } else {
        eprintln!("restore: copying {data} aside into {aside}");
        docker
            .create_volume(&aside, engine::resource_labels(p, "volume", ASIDE))
            .await?;
        let copy = copy_task(stack, &data, &aside);
        if let Err(e) = run_checked(docker, &copy).await {
            // Nothing changed yet but a partial copy: drop it, bring the stack back.
            let _ = docker.remove_volume(&aside).await;
            start(docker, stack, &project, &stopped, opts.wait_timeout).await?;
            return Err(e.context("copying the data aside failed; nothing was changed"));
        }
    }

    let attempt = async {
        eprintln!("restore: pgbackrest restore into {data}");
        run_checked(docker, &restore_task(stack, opts.target, &passphrase)).await?;
        eprintln!("restore: starting postgres, replaying WAL");
        start(
            docker,
            stack,
            &project,
            &["postgres".into()],
            opts.wait_timeout,
        )
        .await?;
        wait_promoted(docker, stack, opts.wait_timeout).await?;
        eprintln!("restore: starting the services");
        start(docker, stack, &project, &stopped, opts.wait_timeout).await
    };
    if let Err(e) = attempt.await {
        eprintln!("restore failed; putting the previous data back from {aside}");
        engine::stop_services(docker, p, "postgres").await?;
        run_checked(docker, &copy_task(stack, &aside, &data))
            .await
            .context(
                "putting the previous data back failed: it is still in the volume named above",
            )?;
        // The way back gets at least the default wait, whatever the restore was given.
        let wait = opts.wait_timeout.max(Duration::from_secs(180));
        start(docker, stack, &project, &stopped, wait).await?;
        docker.remove_volume(&aside).await?;
        return Err(e.context("restore failed; the database was put back as it was before"));
    }
    docker.remove_volume(&aside).await?;
    Ok(RestoreReport {
        target,
        services: stopped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Reads the repository the way the restore will (a one-off container, `.env`'s passphrase,
/// the rendered pgbackrest.conf), before anything is stopped: a wrong passphrase or an
/// unreadable repository is refused with nothing changed.
async fn preflight(docker: &Docker, stack: &Stack, passphrase: &str) -> Result<()> {
    let mut task = restore_task(stack, RestoreTarget::Latest, passphrase);
    task.purpose = "restore-preflight".into();
    // pgBackRest ends its JSON without a newline, and the Docker Engine's followed log drops
    // a last partial line when the container exits: the shell adds the newline.
    task.cmd = vec![
        "sh".into(),
        "-c".into(),
        "pgbackrest \"$@\"; rc=$?; echo; exit $rc".into(),
        "pgbackrest".into(),
        format!("--stanza={STANZA}"),
        "--output=json".into(),
        "info".into(),
    ];
    task.deadline = super::SHORT;
    task.binds
        .retain(|b| !b.contains(":/var/lib/postgresql/data"));
    let out = engine::run_task(docker, &task).await?;
    let refused = |why: String| {
        UserError::new(format!(
            "the backup repository cannot be read with the BACKUP_PASSPHRASE of {}: {why}; \
             nothing was changed",
            stack.env_path().display()
        ))
        .hint("put back the passphrase the repository was made with (the postgres service runs with the one it had when it was created)")
    };
    if out.code != 0 {
        bail!(refused(out.stderr_tail(3)));
    }
    let info = super::info::parse(&out.stdout, STANZA)
        .with_context(|| format!("pgbackrest info printed:\n{}", out.stderr_tail(10)))?;
    if info.sets().is_empty() {
        bail!(refused(info.status()));
    }
    Ok(())
}

/// Copies volume `from` over volume `to` (its previous contents removed), preserving owners.
fn copy_task(stack: &Stack, from: &str, to: &str) -> Task {
    Task {
        project: stack.project().to_string(),
        purpose: "restore-copy".into(),
        image: stack.file.images.postgres.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "find /to -mindepth 1 -delete && cp -a /from/. /to/".into(),
        ],
        binds: vec![format!("{from}:/from:ro"), format!("{to}:/to")],
        deadline: super::LONG,
        ..Default::default()
    }
}

/// `pgbackrest restore` as `postgres`, with the data and repository volumes and the rendered
/// pgbackrest.conf mounted where the postgres service has them.
fn restore_task(stack: &Stack, target: RestoreTarget, passphrase: &str) -> Task {
    let p = stack.project();
    let mut cmd = vec![
        "pgbackrest".to_string(),
        format!("--stanza={STANZA}"),
        "--delta".into(),
    ];
    if let RestoreTarget::Time(t) = target {
        cmd.push("--type=time".into());
        cmd.push(format!("--target={}", target_arg(t)));
        cmd.push("--target-action=promote".into());
    }
    cmd.push("restore".into());
    let conf = stack.dir.join("backup/pgbackrest.conf");
    Task {
        project: p.to_string(),
        purpose: "restore-pgbackrest".into(),
        image: stack.file.images.postgres.clone(),
        cmd,
        env: vec![format!("PGBACKREST_REPO1_CIPHER_PASS={passphrase}")],
        binds: vec![
            format!(
                "{}:/var/lib/postgresql/data",
                engine::volume_name(p, "pgdata")
            ),
            format!("{}:/var/lib/pgbackrest", engine::volume_name(p, "backups")),
            format!("{}:{}:ro", conf.display(), super::CONFIG_PATH),
        ],
        user: Some("postgres".into()),
        deadline: super::LONG,
    }
}

async fn run_checked(docker: &Docker, task: &Task) -> Result<()> {
    let out = engine::run_task(docker, task).await?;
    if out.code != 0 {
        bail!(
            "{} exited with code {}:\n{}",
            task.purpose,
            out.code,
            out.stderr_tail(15)
        );
    }
    Ok(())
}

async fn start(
    docker: &Docker,
    stack: &Stack,
    project: &crate::compose::Project,
    services: &[String],
    wait_timeout: Duration,
) -> Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    let opts = UpOptions {
        only: services.to_vec(),
        without: Vec::new(),
        wait_timeout,
    };
    engine::up(docker, stack, project, &opts).await
}

/// Waits until the restored server has replayed to its target and promoted (it accepts
/// read-only connections while it replays, which the health check cannot tell apart).
async fn wait_promoted(docker: &Docker, stack: &Stack, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let c = postgres_container(docker, stack).await?;
        let argv = [
            "psql",
            "-X",
            "-At",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "select pg_is_in_recovery()",
        ];
        if let Ok(out) = exec_as_postgres(docker, &c, "psql", &argv, super::SHORT).await
            && String::from_utf8_lossy(&out).trim() == "f"
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the restored server did not finish recovery within {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn times_parse_in_the_forms_we_document() {
        assert_eq!(t("2026-12-03T18:15:00Z"), t("2026-12-03 18:15:00"));
        assert_eq!(t("2026-12-03T19:15:00+01:00"), t("2026-12-03T18:15:00Z"));
        assert_eq!(
            target_arg(t("2026-12-03 18:15:00.25")),
            "2026-12-03 18:15:00.250000+00"
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn a_time_outside_the_window_names_the_window() {
        let w = Window {
            earliest: t("2026-12-03T10:00:00Z"),
            latest: t("2026-12-03T12:00:00Z"),
        };
        let e = check_target(RestoreTarget::Time(t("2026-12-03T09:00:00Z")), w).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("2026-12-03T10:00:00Z .. 2026-12-03T12:00:00Z"),
            "{msg}"
        );
        assert!(check_target(RestoreTarget::Time(t("2026-12-03T12:00:01Z")), w).is_err());
        assert!(check_target(RestoreTarget::Time(t("2026-12-03T11:00:00Z")), w).is_ok());
        assert!(check_target(RestoreTarget::Latest, w).is_ok());
    }
}
