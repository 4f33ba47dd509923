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

// For the command layer and the feature modules that act on a running stack (import-supabase's
// tool containers, workers, queue, publish): the one facade, the stack's operations, one-off tool
// containers, and the helpers that find containers and read their logs.
pub use apply::UpOptions;
pub use docker::{Docker, LABEL_STACK, SwarmRole, docker_host};
pub use images::{build_all, prepare_for_publish};
pub use labels::{invocation_id, resource_labels, volume_name};
pub use ops::{LogView, Volumes, down, logs, logs_where, running_container, status, stop_services};
pub use task::{Task, TaskOutput, remove_orphaned_tasks, remove_tasks, run_task};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::compose::Project;
use crate::config::Stack;
use crate::render::{self, Target};
use crate::secrets::EnvFile;

/// Variables for interpolation: `.env`, overridden by the process environment (as Compose does).
pub fn variables(env: &EnvFile) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = env.values.clone();
    vars.extend(std::env::vars());
    vars
}

/// The project the engine runs: the given Compose file, or the local target rendered from
/// stack.toml (written first, as `render --target local` would).
pub fn load_project(stack: &Stack, env: &EnvFile, file: Option<&Path>) -> Result<Project> {
    let path: PathBuf = match file {
        Some(f) if f.is_absolute() => f.to_path_buf(),
        Some(f) => std::env::current_dir()?.join(f),
        None => render::write_target(stack, env, Target::Local, None)?.compose_path,
    };
    Project::load(&path, &variables(env), stack.project())
}

/// Makes the selected services' images present (built or pulled), then converges their
/// containers and waits until each is ready.
pub async fn up(docker: &Docker, stack: &Stack, project: &Project, opts: &UpOptions) -> Result<()> {
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

/// Runs one container of `service` once (`docker compose run --rm`), after `first` (and what
/// they depend on) is up and the service's image is present; returns its exit code.
pub async fn run_once(
    docker: &Docker,
    stack: &Stack,
    project: &Project,
    service: &str,
    first: &[String],
    command: Vec<String>,
    env: &[(String, String)],
) -> Result<i64> {
    let Some(svc) = project.file.services.get(service) else {
        anyhow::bail!("the Compose file has no `{service}` service");
    };
    if !first.is_empty() {
        let opts = UpOptions {
            only: first.to_vec(),
            without: Vec::new(),
            wait_timeout: std::time::Duration::from_secs(180),
        };
        up(docker, stack, project, &opts).await?;
    }
    images::ensure(docker, stack, std::slice::from_ref(&svc.image), &|_, _| {}).await?;
    ops::run_oneoff(
        docker,
        stack,
        project,
        service,
        Some(command),
        env,
        ops::ONEOFF_DEADLINE,
    )
    .await
}
