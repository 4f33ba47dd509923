//! `stackctl migrate`: platform migrations, the role bootstrap, then the application's migrations.
//!
//! Order of a run, all under one advisory lock so that concurrent runs serialise:
//! 1. the platform migrations (`migrations/`, embedded with refinery), applied by the superuser;
//! 2. the role bootstrap (`bootstrap.sql`), idempotent, passwords as SCRAM verifiers;
//! 3. the application's migrations (`stack.toml` `migrations.directory`, loaded at run time),
//!    applied as `db_migrator` over its own login, so that it owns what they create and the
//!    default privileges apply.
//!
//! Each migration runs in its own transaction with a `lock_timeout`; a failure rolls it back, stops
//! the run and names the file, the line and Postgres's message. History lives in schema `stackctl`
//! (`platform_migrations`, `app_migrations`) in refinery's table format.
//!
//! Connection: `--database-url` (a superuser; passwords of the logins from the stack's `.env`), or
//! `--from-env` in the migrate container (PG* variables for the superuser, one variable per login
//! password, `STACKCTL_MIGRATIONS_DIR` for the migrations).

pub mod bootstrap;
pub mod connect;
pub mod migrate;
pub mod plan;
pub mod sql;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Stack;
use crate::error::UserError;
use crate::secrets::EnvFile;
use connect::Target;
use migrate::History;
use plan::{Entry, MigrationFile};

/// How long a run waits for another run's migration lock.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// The environment variable naming the migrations directory inside the migrate container.
pub const MIGRATIONS_DIR_ENV: &str = "STACKCTL_MIGRATIONS_DIR";
/// How long the migrate job (`--from-env`) waits for PostgreSQL to answer, in seconds.
pub const DB_WAIT_ENV: &str = "STACKCTL_DB_WAIT_SECS";
const DEFAULT_DB_WAIT_SECS: u64 = 180;

/// What `migrate` does.
pub enum Action {
    /// Apply what is pending (or, with `dry_run`, print what would run).
    Apply { dry_run: bool },
    /// Show applied and pending migrations.
    Status { json: bool },
    /// Create the next versioned migration file.
    New { name: String },
}

/// Where the database and the logins' passwords come from.
pub enum Source<'a> {
    /// Inside the migrate container: PG* variables and one variable per login password.
    Env,
    /// From the host: the stack's `stack.toml` and `.env`, and `--database-url` if given.
    Stack {
        stack: &'a Stack,
        env: &'a EnvFile,
        database_url: Option<String>,
    },
}

/// A `migrate` run's options.
pub struct Options {
    pub action: Action,
    /// How long one migration may wait for a lock on a table, in seconds.
    pub lock_timeout: u64,
}

/// Everything a run needs, resolved once from the flags, `stack.toml`, `.env` or the environment.
struct Settings<'a> {
    /// Where the database is, or `None` when only files are needed (`migrate new`).
    target: Option<Target>,
    /// Where the logins' passwords come from.
    passwords: PasswordSource<'a>,
    dir: PathBuf,
    dir_shown: String,
    lock_timeout: Duration,
    /// How long to wait for the server to answer (the migrate job: `STACKCTL_DB_WAIT_SECS`).
    wait: Duration,
}

enum PasswordSource<'a> {
    Env,
    DotEnv(&'a EnvFile),
}

/// Runs `stackctl migrate [status|new]` directly against a database (`--database-url` or, in the
/// migrate container, `--from-env`), or `migrate new` on the files alone.
pub async fn run(source: Source<'_>, opts: &Options) -> Result<()> {
    let settings = resolve(source, opts)?;
    match &opts.action {
        Action::New { name } => new_file(&settings, name),
        Action::Status { json } => status(&settings, *json).await,
        Action::Apply { dry_run: true } => dry_run(&settings).await,
        Action::Apply { dry_run: false } => apply_all(&settings).await.map(|_| ()),
    }
}

fn resolve<'a>(source: Source<'a>, opts: &Options) -> Result<Settings<'a>> {
    let lock_timeout = Duration::from_secs(opts.lock_timeout.max(1));
    let (stack, env, database_url) = match source {
        Source::Env => {
            let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let dir = get(MIGRATIONS_DIR_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/migrations"));
            // The password may come from PGPASSWORD_FILE (a Swarm secret) as well.
            let password = protocol::secret_env::var("PGPASSWORD")?;
            return Ok(Settings {
                target: Some(Target::from_env(|k| match k {
                    "PGPASSWORD" => password.clone(),
                    _ => get(k),
                })),
                passwords: PasswordSource::Env,
                dir_shown: dir.display().to_string(),
                dir,
                lock_timeout,
                wait: Duration::from_secs(
                    get(DB_WAIT_ENV)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(DEFAULT_DB_WAIT_SECS),
                ),
            });
        }
        Source::Stack {
            stack,
            env,
            database_url,
        } => (stack, env, database_url),
    };
    let rel = stack
        .file
        .migrations
        .directory
        .trim_end_matches('/')
        .to_string();
    let target = match &database_url {
        Some(url) => Some(Target::from_url(url)?),
        None if matches!(opts.action, Action::New { .. }) => None,
        None => {
            return Err(UserError::new("no database to migrate: pass --database-url URL (or set STACKCTL_DATABASE_URL)")
                .hint("`stackctl migrate` without a URL runs the stack's migrate container; use it once the stack is up")
                .into());
        }
    };
    Ok(Settings {
        target,
        dir: stack.dir.join(&rel),
        dir_shown: rel,
        passwords: PasswordSource::DotEnv(env),
        lock_timeout,
        wait: Duration::ZERO,
    })
}

impl Settings<'_> {
    fn target(&self) -> &Target {
        self.target
            .as_ref()
            .expect("resolve() sets a target for every action that connects")
    }

    fn app_files(&self) -> Result<Vec<MigrationFile>> {
        plan::load_dir(&self.dir, &self.dir_shown)
    }

    /// Each login's plain password (role -> password).
    fn passwords(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        match &self.passwords {
            PasswordSource::Env => {
                for (role, key) in bootstrap::LOGINS {
                    let pw = protocol::secret_env::var(key)?.ok_or_else(|| {
                        UserError::new(format!("the environment has no {key} (nor {key}_FILE; the password of login {role})"))
                            .hint("the migrate service of the rendered compose file passes every login password; render it again with `stackctl render`")
                    })?;
                    out.insert(role.to_string(), pw);
                }
            }
            PasswordSource::DotEnv(env) => {
                env.require_all()?;
                for (role, _) in bootstrap::LOGINS {
                    let pw = env.role_password(role).unwrap_or_default();
                    out.insert(role.to_string(), pw.to_string());
                }
            }
        }
        Ok(out)
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub platform_applied: Vec<String>,
    pub role_changes: Vec<String>,
    pub app_applied: Vec<String>,
}

async fn apply_all(s: &Settings<'_>) -> Result<Report> {
    let target = s.target();
    // Validate what can be validated before touching the database.
    let platform = plan::platform_migrations();
    let app = s.app_files()?;
    let passwords = s.passwords()?;

    let mut su = target.connect_waiting(s.wait).await?;
    connect::check_superuser(&su, target).await?;
    migrate::lock(&su, LOCK_WAIT).await?;
    migrate::ensure_history(&su).await?;
    let mut report = Report::default();

    let done = migrate::applied(&su, History::Platform).await?;
    for m in plan::pending(&platform, &done, "the stackctl binary")? {
        let stmts = m.statements()?;
        let took = migrate::apply(&mut su, m, &stmts, History::Platform, s.lock_timeout).await?;
        println!("platform: applied {} ({} ms)", m.file, took.as_millis());
        report.platform_applied.push(m.file.clone());
    }

    report.role_changes = bootstrap::run(&mut su, &passwords, s.lock_timeout).await?;
    if !report.role_changes.is_empty() {
        println!("roles: {}", report.role_changes.join(", "));
    }

    let done = migrate::applied(&su, History::App).await?;
    let pending = plan::pending(&app, &done, &s.dir_shown)?;
    let stmts: Vec<_> = pending
        .iter()
        .map(|m| m.statements())
        .collect::<Result<_, _>>()?;
    if !pending.is_empty() {
        let migrator = target.as_login("db_migrator", &passwords["db_migrator"]);
        let mut mc = migrator
            .connect()
            .await
            .context("connecting as db_migrator to apply the application's migrations")?;
        for (i, (m, st)) in pending.iter().zip(&stmts).enumerate() {
            if i > 0 {
                // Each migration starts from a clean session, as with one `psql -f` per file.
                mc.batch_execute("DISCARD ALL")
                    .await
                    .context("resetting the session between migrations")?;
            }
            let took = migrate::apply(&mut mc, m, st, History::App, s.lock_timeout).await?;
            println!("app: applied {} ({} ms)", m.file, took.as_millis());
            report.app_applied.push(m.file.clone());
        }
    }
    su.execute("SELECT pg_advisory_unlock($1)", &[&migrate::LOCK_KEY])
        .await
        .context("releasing the migration lock")?;

    if report.platform_applied.is_empty() && report.app_applied.is_empty() {
        println!(
            "{}: up to date ({} platform and {} app migrations applied; roles {})",
            target.describe(),
            platform.len(),
            app.len(),
            if report.role_changes.is_empty() {
                "unchanged"
            } else {
                "updated"
            }
        );
    } else {
        println!(
            "{}: applied {} platform and {} app migrations",
            target.describe(),
            report.platform_applied.len(),
            report.app_applied.len()
        );
    }
    Ok(report)
}

/// `migrate status --json`.
#[derive(Debug, Serialize)]
struct StatusJson {
    database: String,
    platform: Vec<Entry>,
    app: Vec<Entry>,
}

async fn read_status(s: &Settings<'_>) -> Result<(Vec<Entry>, Vec<Entry>)> {
    let app_files = s.app_files()?;
    let client = s.target().connect().await?;
    let platform = plan::status(
        &plan::platform_migrations(),
        &migrate::applied(&client, History::Platform).await?,
    );
    let app = plan::status(&app_files, &migrate::applied(&client, History::App).await?);
    Ok((platform, app))
}

async fn status(s: &Settings<'_>, json: bool) -> Result<()> {
    let (platform, app) = read_status(s).await?;
    if json {
        let out = StatusJson {
            database: s.target().describe(),
            platform,
            app,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("database {}", s.target().describe());
    for (title, entries) in [
        ("platform migrations (built in)".to_string(), &platform),
        (format!("app migrations ({})", s.dir_shown), &app),
    ] {
        println!("{title}:");
        if entries.is_empty() {
            println!("  (none)");
        }
        for e in entries {
            println!(
                "  {:<12} V{:<5} {:<32} {}  {}",
                e.state.to_string(),
                e.version,
                e.name,
                e.checksum,
                e.applied_on.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

async fn dry_run(s: &Settings<'_>) -> Result<()> {
    let platform = plan::platform_migrations();
    let app = s.app_files()?;
    let client = s.target().connect().await?;
    connect::check_superuser(&client, s.target()).await?;
    let p_done = migrate::applied(&client, History::Platform).await?;
    let a_done = migrate::applied(&client, History::App).await?;
    let p = plan::pending(&platform, &p_done, "the stackctl binary")?;
    let a = plan::pending(&app, &a_done, &s.dir_shown)?;
    println!(
        "dry run against {}: nothing will be changed",
        s.target().describe()
    );
    for m in &p {
        println!(
            "would apply platform {} ({} statements)",
            m.file,
            m.statements()?.len()
        );
    }
    println!(
        "would run the role bootstrap ({} roles; passwords from {})",
        bootstrap::ROLES.len(),
        match s.passwords {
            PasswordSource::Env => "the environment",
            PasswordSource::DotEnv(_) => ".env",
        }
    );
    for m in &a {
        println!(
            "would apply app {} ({} statements, as db_migrator)",
            m.file,
            m.statements()?.len()
        );
    }
    if p.is_empty() && a.is_empty() {
        println!("no migrations pending");
    }
    Ok(())
}

fn new_file(s: &Settings<'_>, name: &str) -> Result<()> {
    let files = s.app_files()?;
    let file_name = plan::next_file_name(&files, name)?;
    std::fs::create_dir_all(&s.dir).with_context(|| format!("creating {}", s.dir.display()))?;
    let path = s.dir.join(&file_name);
    let body = format!(
        "-- {file_name}: applied once, in its own transaction, as db_migrator (which then owns what it creates).\n\
         -- Never edit this file after it was applied; add a new migration instead.\n\n"
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, body.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!("created {}/{file_name}", s.dir_shown);
    Ok(())
}

/// Compile-time check: a caller may spawn [`run`] on a multi-threaded runtime, so it must be Send.
#[allow(dead_code)]
fn run_is_send<'a>(
    source: Source<'a>,
    opts: &'a Options,
) -> impl Future<Output = Result<()>> + Send + 'a {
    run(source, opts)
}
