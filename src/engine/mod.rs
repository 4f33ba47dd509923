//! The engine: reconcile the rendered Compose project with the Docker Engine.
//!
//! `up` renders the local Compose file (the single source of truth), reads it back through
//! `compose`, plans (`plan`, pure) and applies (`apply`) through the one Docker facade (`docker`).
//!
//! Interplay with Docker Compose: containers, networks and volumes carry Compose's labels and
//! names, so `docker compose -p NAME ps | logs | down` see the stack. Our config hash (sha256 of
//! the interpolated service as JSON plus its config files) is not Compose's Go hash, so a
//! `docker compose up` on the same project recreates every container once (and vice versa).
//! Config files are uploaded into the container before each start rather than bind-mounted, so
//! their declared `mode`/`uid`/`gid` apply whatever the host file's mode (e.g. 0600 secrets).

mod apply;
mod docker;
mod images;
mod labels;
mod ops;
mod plan;
mod progress;
mod spec;
mod task;
mod wait;

// For feature modules that act on a running stack (import-supabase's tool containers, workers,
// queue): the one facade, one-off tool containers, and the helpers that find containers and read
// their logs.
pub use docker::Docker;
// For `stackctl publish`: our images, built or found, before they are pushed.
pub use images::prepare_for_publish;
pub use ops::{LogView, logs_where, running_container};
pub use task::{Task, TaskOutput, remove_tasks, run_task};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cli::{BuildArgs, DownArgs, LogsArgs, MigrateAction, MigrateArgs, StatusArgs, UpArgs};
use crate::compose::Project;
use crate::config::Stack;
use crate::error::UserError;
use crate::render::{self, Target};
use crate::secrets::EnvFile;

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Variables for interpolation: `.env`, overridden by the process environment (as Compose does).
fn variables(stack: &Stack) -> Result<BTreeMap<String, String>> {
    let mut vars: BTreeMap<String, String> = EnvFile::load(&stack.env_path())?.values;
    vars.extend(std::env::vars());
    Ok(vars)
}

/// The project `up` runs: the given Compose file, or the local target rendered from stack.toml.
fn load_project(stack: &Stack, file: Option<&Path>) -> Result<Project> {
    let path: PathBuf = match file {
        Some(f) if f.is_absolute() => f.to_path_buf(),
        Some(f) => std::env::current_dir()?.join(f),
        None => render::run(stack, Target::Local, None)?.compose_path,
    };
    Project::load(&path, &variables(stack)?, stack.project())
}

pub fn cmd_up(stack: &Stack, a: UpArgs) -> Result<()> {
    let project = load_project(stack, a.file.as_deref())?;
    let opts = apply::UpOptions {
        only: a.services,
        without: a.without,
        wait_timeout: Duration::from_secs(a.wait_timeout),
    };
    let started = std::time::Instant::now();
    runtime()?.block_on(async {
        let docker = docker::Docker::connect().await?;
        up(&docker, stack, &project, &opts).await
    })?;
    let n = project.select(&opts.only, &opts.without)?.len();
    println!(
        "project {} is up: {n} services ready in {:.1}s (`stackctl status` for ports)",
        project.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn up(
    docker: &docker::Docker,
    stack: &Stack,
    project: &Project,
    opts: &apply::UpOptions,
) -> Result<()> {
    let selected = project.select(&opts.only, &opts.without)?;
    let progress = progress::Progress::new(&selected);
    let mut refs: Vec<String> = Vec::new();
    for s in &selected {
        let img = &project.file.services[s].image;
        if !refs.contains(img) {
            refs.push(img.clone());
        }
    }
    let image_ids = images::ensure(docker, stack, &refs, &|image, what| {
        for s in &selected {
            if project.file.services[s].image == image {
                progress.set(s, format!("{what} image {image}"));
            }
        }
    })
    .await?;
    apply::up(docker, project, opts, image_ids, &progress).await
}

pub fn cmd_down(stack: &Stack, a: DownArgs) -> Result<()> {
    runtime()?.block_on(async {
        let docker = docker::Docker::connect().await?;
        ops::down(&docker, stack.project(), a.volumes).await
    })
}

pub fn cmd_status(stack: &Stack, a: StatusArgs) -> Result<()> {
    runtime()?.block_on(async {
        let docker = docker::Docker::connect().await?;
        ops::status(&docker, stack.project(), a.json).await
    })
}

pub fn cmd_logs(stack: &Stack, a: LogsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let docker = docker::Docker::connect().await?;
        ops::logs(&docker, stack.project(), &a.services, a.follow, &a.tail).await
    })
}

pub fn cmd_build(stack: &Stack, a: BuildArgs) -> Result<()> {
    runtime()?.block_on(async {
        let docker = docker::Docker::connect().await?;
        images::build_all(&docker, stack, &a.services, &a.base).await
    })
}

pub fn cmd_migrate(dir: &Path, a: MigrateArgs) -> Result<()> {
    // With a URL, inside the migrate container, or for `migrate new` (which only writes a
    // file): the database module directly.
    let writes_a_file = matches!(a.action, Some(MigrateAction::New { .. }));
    if a.database_url.is_some() || a.from_env || writes_a_file {
        return crate::db::run(dir, a);
    }
    // Otherwise in the stack's network: the `migrate` service's container, run once, with the
    // same arguments passed on (`status [--json]`, `--dry-run`, `--lock-timeout`).
    let mut command: Vec<String> = vec![
        "migrate".into(),
        "--from-env".into(),
        "--lock-timeout".into(),
        a.lock_timeout.to_string(),
    ];
    if a.dry_run {
        command.push("--dry-run".into());
    }
    if let Some(MigrateAction::Status { json }) = &a.action {
        command.push("status".into());
        if *json {
            command.push("--json".into());
        }
    }
    let stack = Stack::load(dir)?;
    let project = load_project(&stack, None)?;
    let Some(svc) = project.file.services.get("migrate") else {
        bail!("the Compose file has no `migrate` service");
    };
    let deps: Vec<String> = svc.depends_on.keys().cloned().collect();
    runtime()?.block_on(async {
        let docker = docker::Docker::connect().await?;
        if !deps.is_empty() {
            let opts = apply::UpOptions {
                only: deps,
                without: Vec::new(),
                wait_timeout: Duration::from_secs(180),
            };
            up(&docker, &stack, &project, &opts).await?;
        }
        let code = ops::run_oneoff(
            &docker,
            &stack,
            &project,
            "migrate",
            Some(command),
            &[],
            ops::ONEOFF_DEADLINE,
        )
        .await?;
        if code != 0 {
            bail!(
                UserError::new(format!("the migrate container exited with code {code}"))
                    .hint("its output is above")
            );
        }
        Ok(())
    })
}

/// Runs postgate's admin CLI (`postgate ARGS...`) once in the stack: a one-off container of the
/// `postgate` service (its image, network and environment) on the stack's network, after the
/// database and the migrate job are up. It connects as the operator's login `db_migrator`, which
/// holds `postgate_admin` (SET ROLE, not inherited), straight to PostgreSQL: the service login
/// `postgate` itself cannot create tenants or tokens.
pub fn cmd_postgate_admin(stack: &Stack, args: Vec<String>) -> Result<()> {
    let project = load_project(stack, None)?;
    let Some(svc) = project.file.services.get("postgate") else {
        bail!("the Compose file has no `postgate` service");
    };
    let image = svc.image.clone();
    let vars = variables(stack)?;
    let password = vars
        .get("MIGRATOR_PASSWORD")
        .filter(|p| !p.is_empty())
        .with_context(|| {
            UserError::new(format!(
                "{} has no MIGRATOR_PASSWORD (the admin login db_migrator)",
                stack.env_path().display()
            ))
            .hint("run `stackctl init` to add the missing secrets")
        })?;
    let admin_url = format!(
        "postgres://db_migrator:{password}@postgres:5432/{}",
        stack.file.postgres.database
    );
    runtime()?.block_on(async {
        let docker = docker::Docker::connect().await?;
        let opts = apply::UpOptions {
            only: vec!["migrate".into()],
            without: Vec::new(),
            wait_timeout: Duration::from_secs(180),
        };
        up(&docker, stack, &project, &opts).await?;
        images::ensure(&docker, stack, std::slice::from_ref(&image), &|_, _| {}).await?;
        let env = [("POSTGATE_ADMIN_DATABASE_URL".to_string(), admin_url)];
        let code = ops::run_oneoff(
            &docker,
            stack,
            &project,
            "postgate",
            Some(args),
            &env,
            ops::ONEOFF_DEADLINE,
        )
        .await?;
        if code != 0 {
            bail!(
                UserError::new(format!("postgate's admin command exited with code {code}"))
                    .hint("its message is above")
            );
        }
        Ok(())
    })
}
