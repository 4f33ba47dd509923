//! `stackctl db dump | db restore`: logical dumps of the stack's database (`pg_dump -Fc`), for
//! moving data between stacks or keeping a copy of some schemas — not instead of the pgBackRest
//! backups, which are physical, continuous and restore to any moment.
//!
//! pg_dump and pg_restore run in a one-off container of the stack's own PostgreSQL image (the
//! client is the server's version; nothing is installed on the host), on the host's network
//! against the loopback port `up` publishes, as the superuser, with the file's directory mounted
//! and the file owned by that directory's owner. A dump is written to `FILE.partial` and renamed
//! when pg_dump has succeeded, so FILE is never half-written. A restore runs in one transaction
//! (`--single-transaction`): it applies completely or not at all; `--clean` (which drops the
//! dump's objects before recreating them) needs `--yes`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::config::Stack;
use crate::engine::{self, Docker, Task};
use crate::error::UserError;
use crate::secrets::EnvFile;

/// Where the file's directory appears in the container.
const MOUNT: &str = "/dump";
/// Dumps of real databases take long; the deadline only catches a hung tool.
const DEADLINE: Duration = Duration::from_secs(12 * 3600);

/// What `db dump` wrote.
#[derive(Debug)]
pub struct DumpReport {
    pub file: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
}

/// The default file of `db dump`: `dumps/<database>-<UTC time>.dump` in the stack directory.
pub fn default_file(stack: &Stack) -> PathBuf {
    let at = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    stack
        .dir
        .join("dumps")
        .join(format!("{}-{at}.dump", stack.file.postgres.database))
}

/// A one-off task of the stack's PostgreSQL image with `dir` at [`MOUNT`], as `dir`'s owner,
/// connected (libpq variables) to the stack's database as the superuser.
fn task(stack: &Stack, env: &EnvFile, purpose: &str, dir: &Path, cmd: Vec<String>) -> Result<Task> {
    let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let password = env.get("POSTGRES_PASSWORD").unwrap_or_default();
    Ok(Task {
        project: stack.project().to_string(),
        purpose: purpose.into(),
        image: stack.file.images.postgres.clone(),
        cmd,
        env: vec![
            "PGHOST=127.0.0.1".into(),
            format!("PGPORT={}", stack.file.ports.postgres),
            "PGUSER=postgres".into(),
            format!("PGPASSWORD={password}"),
            format!("PGDATABASE={}", stack.file.postgres.database),
            format!("PGAPPNAME=stackctl {purpose}"),
            "PGCONNECT_TIMEOUT=10".into(),
        ],
        binds: vec![format!("{}:{MOUNT}", dir.display())],
        user: Some(format!("{}:{}", meta.uid(), meta.gid())),
        deadline: DEADLINE,
    })
}

async fn run(docker: &Docker, task: &Task, what: &str, hint: &str) -> Result<()> {
    let out = engine::run_task(docker, task).await?;
    if out.code != 0 {
        bail!(
            UserError::new(format!(
                "{what} failed (exit code {}):\n{}",
                out.code,
                out.stderr_tail(12)
            ))
            .hint(hint.to_string())
        );
    }
    Ok(())
}

/// The file's directory (which must exist) and name.
fn split(file: &Path) -> Result<(PathBuf, String)> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir).map_err(|e| {
        UserError::new(format!("{}: {e}", dir.display()))
            .hint("the file's directory must exist: create it, or pass another --file")
    })?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} names no file", file.display()))?
        .to_string();
    Ok((dir, name))
}

/// `pg_dump -Fc` of the stack's database (only `schemas` when given) into `file`.
pub async fn dump(
    docker: &Docker,
    stack: &Stack,
    env: &EnvFile,
    file: &Path,
    schemas: &[String],
) -> Result<DumpReport> {
    let started = Instant::now();
    if let Some(parent) = file.parent()
        && file.starts_with(stack.dir.join("dumps"))
    {
        crate::files::ensure_writable_dir(parent)?;
    }
    let (dir, name) = split(file)?;
    let target = dir.join(&name);
    if target.exists() {
        bail!(
            UserError::new(format!("{} exists; nothing was written", target.display()))
                .hint("pass another --file, or remove that one first")
        );
    }
    let partial = format!("{name}.partial");
    let mut cmd: Vec<String> = vec![
        "pg_dump".into(),
        "--format=custom".into(),
        format!("--file={MOUNT}/{partial}"),
    ];
    cmd.extend(schemas.iter().map(|s| format!("--schema={s}")));
    let t = task(stack, env, "db-dump", &dir, cmd)?;
    let outcome = run(
        docker,
        &t,
        "pg_dump",
        "is the stack up (`stackctl status`)? the schemas named with --schema must exist",
    )
    .await;
    let partial = dir.join(partial);
    if let Err(e) = outcome {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context("nothing was written"));
    }
    std::fs::rename(&partial, &target)
        .with_context(|| format!("renaming {} to {}", partial.display(), target.display()))?;
    let bytes = std::fs::metadata(&target)?.len();
    Ok(DumpReport {
        file: target,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Restores `file` (a `pg_dump -Fc` archive) into the stack's database in one transaction;
/// `clean` drops the dump's objects first (the caller has asked for `--yes`).
pub async fn restore(
    docker: &Docker,
    stack: &Stack,
    env: &EnvFile,
    file: &Path,
    clean: bool,
) -> Result<f64> {
    let started = Instant::now();
    if !file.is_file() {
        bail!(
            UserError::new(format!(
                "{} is not a file; nothing was changed",
                file.display()
            ))
            .hint("pass a file `stackctl db dump` (or pg_dump -Fc) wrote")
        );
    }
    let (dir, name) = split(file)?;
    let mut cmd: Vec<String> = vec![
        "pg_restore".into(),
        "--single-transaction".into(),
        "--exit-on-error".into(),
        format!("--dbname={}", stack.file.postgres.database),
    ];
    if clean {
        cmd.push("--clean".into());
        cmd.push("--if-exists".into());
    }
    cmd.push(format!("{MOUNT}/{name}"));
    let t = task(stack, env, "db-restore", &dir, cmd)?;
    run(
        docker,
        &t,
        "pg_restore",
        "it ran in one transaction, so nothing was changed; objects that exist already need \
         --clean --yes (which drops the dump's objects first)",
    )
    .await?;
    Ok(started.elapsed().as_secs_f64())
}
