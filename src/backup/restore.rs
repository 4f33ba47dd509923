//! `stackctl restore`: point-in-time (or latest) recovery of the stack's database from its
//! pgBackRest repository, also after a total loss of the data volume.
//!
//! The order, and why:
//! 1. The caller holds the stack's lock (`stacklock`), so no migrate or other restore runs;
//!    restore containers a killed run left behind are removed first.
//! 2. If postgres runs, `pgbackrest check` switches WAL and waits until it is archived, so the
//!    repository covers every transaction committed before the command started. Then the
//!    repository is read in a one-off container with `.env`'s passphrase, as the restore will
//!    read it (no server needed): a wrong passphrase is refused before anything stops, and the
//!    window (oldest backup's end .. now) is checked against `--to`.
//! 3. Without `--yes`: print the plan, change nothing, exit non-zero.
//! 4. Stop the services (the database last) and copy the data volume aside into
//!    `<project>_pgdata-before-restore`, labelled with the services stopped. A copy an
//!    unfinished restore left is kept as it is (it holds the data from before that restore, the
//!    only way back) and its label says which services to start again. With no data volume at
//!    all (a total loss) there is nothing to set aside: an empty one is made.
//! 5. `pgbackrest restore --delta [--type=time --target=T --target-action=promote]` in a one-off
//!    container of our image with the data and repository volumes mounted.
//! 6. Start postgres, wait until it has left recovery (promoted), then start the services that
//!    were running and wait until healthy; only then remove the copy set aside. If 5-6 fail,
//!    the copy is put back, the services are started again, and the error is reported.
//! 7. `CHECKPOINT` and `pgbackrest check` on the new timeline (`resume_archiving`): archiving
//!    works there and archive_timeout holds from the first minute; a failure is a warning (the
//!    data is restored either way).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use super::info::StanzaInfo;
use super::{STANZA, Window, exec_as_postgres, pgbackrest, postgres_container};
use crate::config::Stack;
use crate::engine::{self, Docker, Task, UpOptions};
use crate::error::UserError;
use crate::secrets::EnvFile;

/// Where to recover to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    /// A moment inside the restorable window.
    Time(DateTime<Utc>),
    /// The end of the archived WAL.
    Latest,
    /// One backup set as it was when it ended (its label, from `backup list`).
    Set(String),
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
/// In the repository volume: the timeline of the stack's live server, written after every restore
/// (the new one, or the old one when the data was put back). A failed restore that got as far as
/// promoting leaves an abandoned timeline in the archive with a higher number than the live one;
/// PostgreSQL's default (`latest`) would follow it, so recovery names the live one.
const LIVE_TIMELINE_FILE: &str = "/var/lib/pgbackrest/stackctl-live-timeline";

/// On the volume set aside: the services the restore stopped (comma-separated), so that a
/// re-run of an interrupted restore starts them again although it found them stopped.
const LABEL_SERVICES: &str = "io.stackctl.restore.services";

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

/// Checks `target` against the window and the backup sets' labels (pure).
pub fn check_target(
    target: &RestoreTarget,
    window: Window,
    labels: &[String],
) -> std::result::Result<(), UserError> {
    match target {
        RestoreTarget::Time(t) if *t < window.earliest || *t > window.latest => {
            Err(UserError::new(format!(
                "--to {} is outside the restorable window {} .. {}; nothing was changed",
                fmt(*t),
                fmt(window.earliest),
                fmt(window.latest)
            ))
            .hint("pick a time inside the window (`stackctl backup list` shows it)"))
        }
        RestoreTarget::Set(l) if !labels.contains(l) => Err(UserError::new(format!(
            "--set {l}: the repository has no backup set of that label; nothing was changed"
        ))
        .hint(format!("backup sets: {}", labels.join(", ")))),
        _ => Ok(()),
    }
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
    let p = stack.project();
    // The caller holds the stack's lock: a restore task still here was left by a killed run.
    let orphans = engine::remove_orphaned_tasks(docker, p, "restore-").await?;
    if orphans > 0 {
        eprintln!("restore: removed {orphans} container(s) left by an interrupted restore");
    }
    let passphrase = passphrase(stack, env)?;

    // With the server up, `check` archives everything committed until now; without it (a total
    // loss) the archive reaches as far as the server got before it went.
    let running = postgres_container(docker, stack).await.ok();
    let checked_at = Utc::now();
    let mut live_timeline = None;
    if let Some(c) = &running {
        super::stanza_in(docker, c).await?;
        pgbackrest(docker, c, &["check"], super::SHORT).await?;
        live_timeline = Some(timeline_of(docker, c).await?);
    }
    let repo = read_repository(docker, stack, &passphrase).await?;
    let timeline = live_timeline.or(repo.live_timeline);
    let info = repo.info;
    let Some(window) = info.window(Some(checked_at)) else {
        bail!(
            UserError::new("the repository holds no backup to restore from; nothing was changed")
                .hint("take one with `stackctl backup`")
        );
    };
    let labels: Vec<String> = info.sets().into_iter().map(|s| s.label).collect();
    check_target(&opts.target, window, &labels)?;
    let target = match &opts.target {
        RestoreTarget::Time(t) => fmt(*t),
        RestoreTarget::Latest => "the end of the archived WAL".into(),
        RestoreTarget::Set(l) => format!("backup {l} as it ended"),
    };
    let (data, aside) = (
        engine::volume_name(p, "pgdata"),
        engine::volume_name(p, ASIDE),
    );
    let aside_labels = docker.volume_labels(&aside).await?;
    let data_exists = docker.volume_exists(&data).await?;
    let keep_aside = if aside_labels.is_some() {
        format!("keep {aside}: an unfinished restore left it, with the data from before it")
    } else if data_exists {
        format!("copy volume {data} aside into {aside}")
    } else {
        format!("nothing to set aside: volume {data} does not exist (the data is lost)")
    };
    let unknown_end = if running.is_none() {
        "\n  postgres is not running: the archive ends where the server stopped archiving"
    } else {
        ""
    };
    eprintln!(
        "restore plan: recover the database of project {p} to {target} (window {} .. {}):{unknown_end}\n  \
         1. stop the stack's services (postgres last)\n  \
         2. {keep_aside}\n  \
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
    let mut stopped = engine::stop_services(docker, p, "postgres").await?;
    let has_aside = match &aside_labels {
        Some(labels) => {
            eprintln!("restore: keeping {aside} from an unfinished restore (the data before it)");
            // The services that run interrupted stopped are the ones to start again.
            if let Some(list) = labels.get(LABEL_SERVICES) {
                stopped.extend(list.split(',').filter(|s| !s.is_empty()).map(String::from));
                stopped.sort();
                stopped.dedup();
            }
            true
        }
        None if data_exists => {
            eprintln!("restore: copying {data} aside into {aside}");
            let mut labels = engine::resource_labels(p, "volume", ASIDE);
            labels.insert(LABEL_SERVICES.into(), stopped.join(","));
            docker.create_volume(&aside, labels).await?;
            let copy = copy_task(stack, &data, &aside);
            if let Err(e) = run_checked(docker, &copy).await {
                // Nothing changed yet but a partial copy: drop it, bring the stack back.
                let _ = docker.remove_volume(&aside).await;
                start(docker, stack, &project, &stopped, opts.wait_timeout).await?;
                return Err(e.context("copying the data aside failed; nothing was changed"));
            }
            true
        }
        None => {
            eprintln!("restore: volume {data} does not exist; restoring into a new one");
            docker
                .create_volume(&data, engine::resource_labels(p, "volume", "pgdata"))
                .await?;
            false
        }
    };
    if !stopped.iter().any(|s| s == "postgres") {
        stopped.push("postgres".into());
        stopped.sort();
    }

    let attempt = async {
        eprintln!("restore: pgbackrest restore into {data}");
        run_checked(
            docker,
            &restore_task(stack, &opts.target, timeline, &passphrase),
        )
        .await?;
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
        record_live_timeline(docker, stack).await?;
        eprintln!("restore: starting the services");
        start(docker, stack, &project, &stopped, opts.wait_timeout).await
    };
    if let Err(e) = attempt.await {
        if !has_aside {
            return Err(e.context(
                "restore failed; there was no data before it to put back, and the repository \
                 is unchanged: fix the cause above and run the restore again",
            ));
        }
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
        record_live_timeline(docker, stack).await?;
        docker.remove_volume(&aside).await?;
        return Err(e.context("restore failed; the database was put back as it was before"));
    }
    if has_aside {
        docker.remove_volume(&aside).await?;
    }
    // The data is restored whatever this says; a failure here is about archiving, not the data.
    if let Err(e) = resume_archiving(docker, stack).await {
        eprintln!(
            "restore: warning: the database is restored, but archiving on its new timeline is \
             not confirmed: {e:#}\n  until it is, a loss costs more than archive_timeout: see \
             `stackctl status` and `stackctl logs postgres`"
        );
    }
    Ok(RestoreReport {
        target,
        services: stopped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The repository's passphrase, from `.env`.
pub(super) fn passphrase(stack: &Stack, env: &EnvFile) -> Result<String> {
    engine::variables(env)
        .get("BACKUP_PASSPHRASE")
        .filter(|v| !v.is_empty())
        .cloned()
        .with_context(|| {
            UserError::new(format!(
                "{} has no BACKUP_PASSPHRASE",
                stack.env_path().display()
            ))
            .hint("run `stackctl init` to add the missing secrets")
        })
}

/// Reads the repository the way a restore will (a one-off container, `.env`'s passphrase,
/// the rendered pgbackrest.conf), with no server needed and before anything is stopped: a wrong
/// passphrase or an unreadable repository is refused with nothing changed.
/// What the repository says, read without a server.
pub(super) struct Repository {
    pub info: StanzaInfo,
    /// The live server's timeline as the last restore recorded it (none before any restore).
    pub live_timeline: Option<u32>,
}

/// The marker line after pgBackRest's JSON that carries [`LIVE_TIMELINE_FILE`]'s content.
const TIMELINE_MARKER: &str = "stackctl-live-timeline=";

/// Splits the preflight's output into pgBackRest's JSON and the recorded live timeline.
fn split_preflight(stdout: &[u8]) -> (&[u8], Option<u32>) {
    let text = String::from_utf8_lossy(stdout);
    let Some(at) = text.rfind(TIMELINE_MARKER) else {
        return (stdout, None);
    };
    let timeline = text[at + TIMELINE_MARKER.len()..].trim().parse().ok();
    (&stdout[..at], timeline)
}

/// The timeline of the server in container `c`.
async fn timeline_of(docker: &Docker, c: &str) -> Result<u32> {
    let v = super::sql_value(docker, c, "select timeline_id from pg_control_checkpoint()").await?;
    v.parse()
        .with_context(|| format!("reading the server's timeline: {v:?}"))
}

/// Writes the running server's timeline into [`LIVE_TIMELINE_FILE`].
async fn record_live_timeline(docker: &Docker, stack: &Stack) -> Result<()> {
    let c = postgres_container(docker, stack).await?;
    let tl = timeline_of(docker, &c).await?;
    let script = format!(
        "printf '%s\\n' {tl} > {LIVE_TIMELINE_FILE}.tmp && mv {LIVE_TIMELINE_FILE}.tmp {LIVE_TIMELINE_FILE}"
    );
    exec_as_postgres(
        docker,
        &c,
        "recording the live timeline",
        &["sh", "-c", &script],
        super::SHORT,
    )
    .await?;
    Ok(())
}

pub(super) async fn read_repository(
    docker: &Docker,
    stack: &Stack,
    passphrase: &str,
) -> Result<Repository> {
    let mut task = repo_task(stack, "restore-preflight", passphrase, "");
    // pgBackRest ends its JSON without a newline, and the Docker Engine's followed log drops
    // a last partial line when the container exits: the shell adds the newline.
    task.cmd = vec![
        "sh".into(),
        "-c".into(),
        format!(
            "pgbackrest \"$@\"; rc=$?; echo; echo \"{TIMELINE_MARKER}$(cat {LIVE_TIMELINE_FILE} 2>/dev/null)\"; exit $rc"
        ),
        "pgbackrest".into(),
        format!("--stanza={STANZA}"),
        "--output=json".into(),
        "info".into(),
    ];
    task.deadline = super::SHORT;
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
    let (json, live_timeline) = split_preflight(&out.stdout);
    let info = super::info::parse(json, STANZA)
        .with_context(|| format!("pgbackrest info printed:\n{}", out.stderr_tail(10)))?;
    // An encrypted repository read with a wrong passphrase lists no backup at all.
    if info.sets().is_empty() && info.status.code != 2 {
        bail!(refused(info.status()));
    }
    Ok(Repository {
        info,
        live_timeline,
    })
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

/// `pgbackrest restore` as `postgres` into the stack's data volume.
fn restore_task(
    stack: &Stack,
    target: &RestoreTarget,
    timeline: Option<u32>,
    passphrase: &str,
) -> Task {
    let mut cmd = vec![
        "pgbackrest".to_string(),
        format!("--stanza={STANZA}"),
        "--delta".into(),
    ];
    match target {
        RestoreTarget::Time(t) => {
            cmd.push("--type=time".into());
            cmd.push(format!("--target={}", target_arg(*t)));
            cmd.push("--target-action=promote".into());
        }
        RestoreTarget::Set(label) => {
            cmd.push(format!("--set={label}"));
            cmd.push("--type=immediate".into());
            cmd.push("--target-action=promote".into());
        }
        RestoreTarget::Latest => {}
    }
    // Follow the live server's timeline, not an abandoned one (see LIVE_TIMELINE_FILE); a set
    // is restored to its own end, on its own timeline.
    if let (Some(tl), false) = (timeline, matches!(target, RestoreTarget::Set(_))) {
        cmd.push(format!("--target-timeline={tl}"));
    }
    cmd.push("restore".into());
    let data = engine::volume_name(stack.project(), "pgdata");
    Task {
        cmd,
        ..repo_task(stack, "restore-pgbackrest", passphrase, &data)
    }
}

/// A one-off container of our PostgreSQL image, as `postgres`, with the repository volume and
/// the rendered pgbackrest.conf mounted where the postgres service has them, the passphrase in
/// pgBackRest's variable, and `data_volume` (unless empty) as the data directory. Its command
/// is the caller's.
pub(super) fn repo_task(stack: &Stack, purpose: &str, passphrase: &str, data_volume: &str) -> Task {
    let p = stack.project();
    let conf = stack.dir.join("backup/pgbackrest.conf");
    let mut binds = vec![
        format!("{}:/var/lib/pgbackrest", engine::volume_name(p, "backups")),
        format!("{}:{}:ro", conf.display(), super::CONFIG_PATH),
    ];
    if !data_volume.is_empty() {
        binds.push(format!("{data_volume}:/var/lib/postgresql/data"));
    }
    Task {
        project: p.to_string(),
        purpose: purpose.into(),
        image: stack.file.images.postgres.clone(),
        cmd: Vec::new(),
        env: vec![format!("PGBACKREST_REPO1_CIPHER_PASS={passphrase}")],
        binds,
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

/// Makes archive_timeout hold on the restored server's new timeline at once, and proves that
/// archiving works there. PostgreSQL's checkpointer, once it has written the end-of-recovery
/// checkpoint, can go to sleep for up to checkpoint_timeout before the startup process marks
/// recovery as ended (it bounds its sleep by archive_timeout only outside recovery); until it
/// wakes, no WAL switch is forced, so rows committed meanwhile reach the repository only when a
/// 16 MB segment fills (seen in CI: no segment of the new timeline archived for 150 s). A
/// `CHECKPOINT` wakes it; `pgbackrest check` then switches WAL and waits until the new
/// timeline's first segment is in the repository.
async fn resume_archiving(docker: &Docker, stack: &Stack) -> Result<()> {
    let c = postgres_container(docker, stack).await?;
    super::sql_value(docker, &c, "checkpoint").await?;
    pgbackrest(docker, &c, &["check"], super::SHORT).await?;
    Ok(())
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
    fn the_preflight_output_splits_into_json_and_the_live_timeline() {
        let (json, tl) = split_preflight(b"[{\"a\":1}]\nstackctl-live-timeline=3\n");
        assert_eq!((json, tl), (&b"[{\"a\":1}]\n"[..], Some(3)));
        let (_, tl) = split_preflight(b"[]\nstackctl-live-timeline=\n");
        assert_eq!(tl, None);
        assert_eq!(split_preflight(b"[]").1, None);
    }

    #[test]
    fn a_time_outside_the_window_names_the_window() {
        let w = Window {
            earliest: t("2026-12-03T10:00:00Z"),
            latest: t("2026-12-03T12:00:00Z"),
        };
        let labels = vec!["20261203-100000F".to_string()];
        let e =
            check_target(&RestoreTarget::Time(t("2026-12-03T09:00:00Z")), w, &labels).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("2026-12-03T10:00:00Z .. 2026-12-03T12:00:00Z"),
            "{msg}"
        );
        assert!(check_target(&RestoreTarget::Time(t("2026-12-03T12:00:01Z")), w, &labels).is_err());
        assert!(check_target(&RestoreTarget::Time(t("2026-12-03T11:00:00Z")), w, &labels).is_ok());
        assert!(check_target(&RestoreTarget::Latest, w, &labels).is_ok());
        assert!(check_target(&RestoreTarget::Set(labels[0].clone()), w, &labels).is_ok());
        let e = check_target(&RestoreTarget::Set("nope".into()), w, &labels).unwrap_err();
        assert!(e.to_string().contains("no backup set of that label"), "{e}");
    }
}
