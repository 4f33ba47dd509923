//! Applying a plan: networks, volumes, images, then containers in `depends_on` order.
//!
//! Every selected service runs as its own task; a task first waits for the conditions of its
//! dependencies (published by the dependencies' tasks through watch channels), then creates /
//! recreates / starts its replicas, publishes `Started`, and waits for what its readiness
//! ([`WaitFor`]) asks: healthy (if it has a healthcheck), exited 0 (a job), or nothing more.
//! Independent services therefore start in parallel.
//!
//! A healthy service's first wait also takes a zero exit of its own healthcheck test, run by us
//! (see `wait`): that releases the service's dependents at once. The service itself is reported
//! `healthy` (and `up` returns) only once Docker has recorded it too, so `up`, `stackctl status`
//! and `docker ps` never disagree; that costs at most one `interval` at the end, not one per
//! service. Docker's own `unhealthy` verdict still fails the wait, and every wait has a deadline
//! (`--wait-timeout`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::future::join_all;
use tokio::sync::watch;

use super::docker::{Docker, DockerErrorKind};
use super::labels::{
    LABEL_HASH, LABEL_NUMBER, LABEL_ONEOFF, LABEL_PROJECT, LABEL_SERVICE, Replica, container_name,
    network_name, resource_labels, volume_name,
};
use super::plan::{Action, Desired, Observed, plan};
use super::progress::Progress;
use super::spec::{config_hash, config_tar, container_body, is_job, service_networks};
use super::wait::{self, Deadline, NotHealthy, WaitFor};
use crate::compose::{Condition, Project, VolumeSource};
use crate::error::UserError;

const LOG_TAIL: usize = 30;

pub struct UpOptions {
    pub only: Vec<String>,
    pub without: Vec<String>,
    pub wait_timeout: Duration,
}

/// Ensures the project's networks and volumes used by `services` exist, labelled like Compose's.
pub async fn ensure_networks_and_volumes(
    docker: &Docker,
    project: &Project,
    services: &[String],
) -> Result<()> {
    let p = &project.name;
    let mut nets: Vec<String> = Vec::new();
    let mut vols: Vec<String> = Vec::new();
    for s in services {
        let svc = &project.file.services[s];
        for (n, _) in service_networks(svc) {
            if !nets.contains(&n) {
                nets.push(n);
            }
        }
        for v in &svc.volumes {
            if let VolumeSource::Named(n) = &v.source
                && !vols.contains(n)
            {
                vols.push(n.clone());
            }
        }
    }
    for n in nets {
        let external = project.file.networks.get(&n).is_some_and(|d| d.external);
        let full = if external {
            n.clone()
        } else {
            network_name(p, &n)
        };
        if docker.network_exists(&full).await? {
            continue;
        }
        if external {
            bail!(
                UserError::new(format!("the external network `{n}` does not exist"))
                    .hint(format!("create it: `docker network create {n}`"))
            );
        }
        docker
            .create_network(&full, resource_labels(p, "network", &n))
            .await?;
    }
    for v in vols {
        let full = volume_name(p, &v);
        if docker.volume_exists(&full).await? {
            continue;
        }
        docker
            .create_volume(&full, resource_labels(p, "volume", &v))
            .await?;
    }
    Ok(())
}

/// The containers of a project that `up` manages (not one-off runs).
pub async fn observe(docker: &Docker, project: &str) -> Result<Vec<Observed>> {
    let list = docker
        .list_containers(&[
            format!("{LABEL_PROJECT}={project}"),
            format!("{LABEL_ONEOFF}=False"),
        ])
        .await?;
    let mut out = Vec::new();
    for c in list {
        let labels = c.labels.unwrap_or_default();
        let (Some(id), Some(service)) = (c.id, labels.get(LABEL_SERVICE).cloned()) else {
            continue;
        };
        use bollard::models::ContainerSummaryStateEnum as S;
        let running = matches!(c.state, Some(S::RUNNING | S::RESTARTING));
        // The exit code is not in the listing: inspect the (few) exited containers.
        let exited_ok = if matches!(c.state, Some(S::EXITED)) {
            docker
                .inspect_container(&id)
                .await?
                .and_then(|i| i.state)
                .is_some_and(|st| st.exit_code == Some(0))
        } else {
            false
        };
        out.push(Observed {
            name: c
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            id,
            service,
            number: labels
                .get(LABEL_NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            config_hash: labels.get(LABEL_HASH).cloned().unwrap_or_default(),
            image_id: c.image_id.unwrap_or_default(),
            running,
            exited_ok,
        });
    }
    Ok(out)
}

/// What a service's task has reached, for its dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Started,
    Healthy,
    Exited(i64),
    Failed,
}

/// Marks an error that only repeats a dependency's failure (reported by the dependency itself).
#[derive(Debug)]
struct DependencyFailed;

impl std::fmt::Display for DependencyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a dependency failed")
    }
}

impl std::error::Error for DependencyFailed {}

struct Ctx {
    docker: Docker,
    project: Project,
    progress: Progress,
    states: HashMap<String, watch::Sender<State>>,
    hashes: HashMap<String, String>,
    image_ids: HashMap<String, String>,
    wait_timeout: Duration,
}

/// Brings the selected services to the state the file describes. `image_ids` maps each
/// selected service's image reference to the image id Docker has for it.
pub async fn up(
    docker: &Docker,
    project: &Project,
    opts: &UpOptions,
    image_ids: HashMap<String, String>,
    progress: &Progress,
) -> Result<()> {
    let selected = project.select(&opts.only, &opts.without)?;
    ensure_networks_and_volumes(docker, project, &selected).await?;

    let mut hashes = HashMap::new();
    let mut desired = Vec::new();
    for s in &selected {
        let svc = &project.file.services[s];
        let hash = config_hash(project, svc)?;
        let image_id = image_ids.get(&svc.image).cloned().unwrap_or_default();
        desired.push(Desired {
            service: s.clone(),
            replicas: svc.replicas(),
            config_hash: hash.clone(),
            image_id,
            job: is_job(svc),
        });
        hashes.insert(s.clone(), hash);
    }
    let observed = observe(docker, &project.name).await?;
    let in_file: Vec<String> = project.file.services.keys().cloned().collect();
    let actions = plan(&desired, &in_file, &observed);

    // Removals first (services gone from the file, surplus replicas), in parallel.
    let removals = actions.iter().filter_map(|a| match a {
        Action::Remove { service, name, id } => Some(async move {
            progress.set(service, format!("removing {name}"));
            docker.stop_container(id, None).await?;
            docker.remove_container(id).await?;
            progress.set(service, format!("removed {name}"));
            Ok::<(), anyhow::Error>(())
        }),
        _ => None,
    });
    for r in join_all(removals).await {
        r?;
    }

    let states: HashMap<String, watch::Sender<State>> = selected
        .iter()
        .map(|s| (s.clone(), watch::channel(State::Pending).0))
        .collect();
    let ctx = Arc::new(Ctx {
        docker: docker.clone(),
        project: project.clone(),
        progress: progress.clone(),
        states,
        hashes,
        image_ids,
        wait_timeout: opts.wait_timeout,
    });
    let mut tasks = Vec::new();
    for s in &selected {
        let mine: Vec<Action> = actions
            .iter()
            .filter(|a| a.service() == s && !matches!(a, Action::Remove { .. }))
            .cloned()
            .collect();
        let ctx = ctx.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let r = run_service(&ctx, &s, mine).await;
            if r.is_err() {
                ctx.states[&s].send_replace(State::Failed);
            }
            (s, r)
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        let (s, r) = t.await.context("a service task panicked")?;
        if let Err(e) = r {
            if e.downcast_ref::<DependencyFailed>().is_some() {
                ctx.progress.finish(&s, "not started: a dependency failed");
            } else {
                ctx.progress.finish(&s, "failed");
                errors.push(e);
            }
        }
    }
    progress.done();
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => {
            let hint = errors
                .iter()
                .find_map(crate::error::hint_of)
                .map(str::to_string);
            let all: Vec<String> = errors.iter().map(|e| format!("- {e:#}")).collect();
            let mut u = UserError::new(format!("{n} services failed:\n{}", all.join("\n")));
            u.hint = hint;
            Err(anyhow!(u))
        }
    }
}

async fn wait_dependency(ctx: &Ctx, service: &str, dep: &str, cond: Condition) -> Result<()> {
    let mut rx = ctx.states[dep].subscribe();
    let deadline = Deadline::after(ctx.wait_timeout);
    loop {
        let st = *rx.borrow_and_update();
        let ok = match (cond, st) {
            (_, State::Failed) => return Err(anyhow!(DependencyFailed)),
            (Condition::ServiceStarted, State::Started | State::Healthy | State::Exited(_)) => true,
            (Condition::ServiceHealthy, State::Healthy) => true,
            (Condition::ServiceCompletedSuccessfully, State::Exited(0)) => true,
            (
                Condition::ServiceCompletedSuccessfully | Condition::ServiceHealthy,
                State::Exited(_),
            ) => {
                return Err(anyhow!(DependencyFailed));
            }
            _ => false,
        };
        if ok {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline.at(), rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(anyhow!(DependencyFailed)),
            Err(_) => bail!(
                UserError::new(format!(
                    "service `{service}`: `{dep}` did not reach {} within {}s",
                    cond.as_str(),
                    deadline.secs()
                ))
                .hint("raise --wait-timeout, or see `stackctl logs` and `stackctl status`")
            ),
        }
    }
}

async fn run_service(ctx: &Ctx, service: &str, actions: Vec<Action>) -> Result<()> {
    let svc = &ctx.project.file.services[service];
    for (dep, d) in &svc.depends_on {
        ctx.progress.set(
            service,
            format!("waiting for {dep} ({})", d.condition.as_str()),
        );
        wait_dependency(ctx, service, dep, d.condition).await?;
    }
    let replicas = actions.iter().map(|a| apply_slot(ctx, service, a));
    let names: Vec<String> = join_all(replicas)
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    ctx.states[service].send_replace(State::Started);

    match WaitFor::of(svc) {
        WaitFor::Healthy(probe) => {
            ctx.progress.set(service, "waiting for health");
            // One deadline for both waits.
            let deadline = Deadline::after(ctx.wait_timeout);
            let waits = names
                .iter()
                .map(|n| wait_healthy(ctx, service, n, Some(&probe), deadline));
            join_all(waits)
                .await
                .into_iter()
                .collect::<Result<Vec<()>>>()?;
            // Its healthcheck passed: dependents may start now.
            ctx.states[service].send_replace(State::Healthy);
            ctx.progress.set(
                service,
                "passed its healthcheck; waiting for Docker to record it",
            );
            let waits = names
                .iter()
                .map(|n| wait_healthy(ctx, service, n, None, deadline));
            join_all(waits)
                .await
                .into_iter()
                .collect::<Result<Vec<()>>>()?;
            ctx.progress.finish(service, "healthy");
        }
        WaitFor::ExitedZero => {
            ctx.progress.set(service, "running to completion");
            let deadline = Deadline::after(ctx.wait_timeout);
            let waits = names.iter().map(|n| wait_exit(ctx, service, n, deadline));
            let codes: Vec<i64> = join_all(waits).await.into_iter().collect::<Result<_>>()?;
            let code = codes.iter().copied().find(|c| *c != 0).unwrap_or(0);
            ctx.states[service].send_replace(State::Exited(code));
            if code != 0 {
                let name = &names[codes.iter().position(|c| *c != 0).unwrap_or(0)];
                return Err(failure(
                    ctx,
                    service,
                    name,
                    Condition::ServiceCompletedSuccessfully,
                    &format!("exited with code {code}"),
                )
                .await);
            }
            ctx.progress.finish(service, "completed");
        }
        WaitFor::Started => ctx.progress.finish(service, "started"),
    }
    Ok(())
}

/// Brings one replica slot to its wanted container; returns the container name.
async fn apply_slot(ctx: &Ctx, service: &str, action: &Action) -> Result<String> {
    let p = &ctx.project.name;
    match action {
        Action::Keep { number, .. } => {
            ctx.progress.set(service, "up to date");
            Ok(container_name(p, service, *number))
        }
        Action::Start { number, id, .. } => {
            let name = container_name(p, service, *number);
            ctx.progress.set(service, "starting");
            // An interrupted run may have created it without its other networks.
            let svc = &ctx.project.file.services[service];
            let slot = Replica {
                service,
                number: *number,
                config_hash: "",
                image_id: "",
                oneoff: false,
            };
            let (_, extra) = container_body(&ctx.project, svc, &slot);
            if !extra.is_empty() {
                let joined: Vec<String> = ctx
                    .docker
                    .inspect_container(id)
                    .await?
                    .and_then(|c| c.network_settings)
                    .and_then(|n| n.networks)
                    .map(|n| n.into_keys().collect())
                    .unwrap_or_default();
                for (net, aliases) in extra {
                    if !joined.contains(&net) {
                        ctx.docker.connect_network(&net, id, aliases).await?;
                    }
                }
            }
            start(ctx, service, id, &name).await?;
            Ok(name)
        }
        Action::Create { number, .. } => create_and_start(ctx, service, *number).await,
        Action::Recreate {
            number,
            old_id,
            reason,
            ..
        } => {
            let svc = &ctx.project.file.services[service];
            ctx.progress.set(service, format!("recreating ({reason})"));
            ctx.docker
                .stop_container(old_id, svc.stop_grace_period)
                .await?;
            ctx.docker.remove_container(old_id).await?;
            create_and_start(ctx, service, *number).await
        }
        Action::Remove { .. } => unreachable!("removals are applied before the service tasks"),
    }
}

async fn create_and_start(ctx: &Ctx, service: &str, number: u32) -> Result<String> {
    let svc = &ctx.project.file.services[service];
    let name = container_name(&ctx.project.name, service, number);
    let image_id = ctx.image_ids.get(&svc.image).cloned().unwrap_or_default();
    let replica = Replica {
        service,
        number,
        config_hash: &ctx.hashes[service],
        image_id: &image_id,
        oneoff: false,
    };
    let (body, extra) = container_body(&ctx.project, svc, &replica);
    ctx.progress.set(service, "creating");
    let id = match ctx.docker.create_container(&name, body.clone()).await {
        Ok(id) => id,
        Err(e) if e.kind == DockerErrorKind::Conflict => {
            // A container with this name that the listing did not match (e.g. left by an
            // interrupted run without our labels): replace it if it belongs to this project.
            let owned = ctx
                .docker
                .inspect_container(&name)
                .await?
                .and_then(|c| c.config)
                .and_then(|c| c.labels)
                .is_some_and(|l| l.get(LABEL_PROJECT) == Some(&ctx.project.name));
            if !owned {
                let taken = format!(
                    "a container named {} exists and does not belong to project {}",
                    e.target, ctx.project.name
                );
                return Err(anyhow::Error::new(e).context(taken));
            }
            ctx.docker.remove_container(&name).await?;
            ctx.docker.create_container(&name, body).await?
        }
        Err(e) => return Err(e.into()),
    };
    for (net, aliases) in extra {
        ctx.docker.connect_network(&net, &id, aliases).await?;
    }
    ctx.progress.set(service, "starting");
    start(ctx, service, &id, &name).await?;
    Ok(name)
}

/// Uploads the config files (every start: an interrupted run may have created the container
/// without them) and starts the container.
async fn start(ctx: &Ctx, service: &str, id: &str, name: &str) -> Result<()> {
    let svc = &ctx.project.file.services[service];
    if let Some(tar) = config_tar(&ctx.project, svc)? {
        ctx.docker.upload_tar(id, tar).await?;
    }
    if let Err(e) = ctx.docker.start_container(name).await {
        let port_in_use = e.kind == DockerErrorKind::PortInUse;
        let e = anyhow::Error::new(e);
        if port_in_use {
            // The engine's message names the port it could not bind.
            let text = format!("{e:#}");
            let ports: Vec<String> = svc
                .ports
                .iter()
                .filter(|p| p.host_port.is_some())
                .map(|p| p.describe())
                .collect();
            let which = ports
                .iter()
                .find(|p| text.contains(p.as_str()))
                .cloned()
                .unwrap_or_else(|| ports.join(", "));
            return Err(e.context(
                UserError::new(format!(
                    "service `{service}`: port {which} is already in use on this host"
                ))
                .hint("stop what holds it, or change the port under [ports] in stack.toml"),
            ));
        }
        return Err(e.context(format!("service `{service}` (condition service_started)")));
    }
    Ok(())
}

async fn failure(
    ctx: &Ctx,
    service: &str,
    name: &str,
    cond: Condition,
    what: &str,
) -> anyhow::Error {
    let logs = ctx.docker.log_tail(name, LOG_TAIL).await;
    let logs = if logs.trim().is_empty() {
        "(no output)".to_string()
    } else {
        logs.trim_end().to_string()
    };
    anyhow!(
        UserError::new(format!(
            "service `{service}` failed ({}): {name} {what}\n--- last {LOG_TAIL} log lines of {name} ---\n{logs}\n---",
            cond.as_str()
        ))
        .hint(format!("see `stackctl logs {service}`; fix the cause and run `stackctl up` again"))
    )
}

/// Waits until container `name` is healthy: with `probe`, also by a zero exit of the service's
/// own healthcheck test run by us; without, by Docker's word only (what `status` and `docker ps`
/// show).
async fn wait_healthy(
    ctx: &Ctx,
    service: &str,
    name: &str,
    probe: Option<&wait::Probe>,
    deadline: Deadline,
) -> Result<()> {
    match wait::healthy(&ctx.docker, name, probe, deadline).await {
        Ok(()) => Ok(()),
        Err(NotHealthy::Docker(e)) => Err(e),
        Err(why @ NotHealthy::Gone) => bail!("service `{service}`: container {name} {why}"),
        Err(why) => {
            let what = why.to_string();
            Err(failure(ctx, service, name, Condition::ServiceHealthy, &what).await)
        }
    }
}

async fn wait_exit(ctx: &Ctx, service: &str, name: &str, deadline: Deadline) -> Result<i64> {
    match wait::exit(&ctx.docker, name, deadline).await? {
        Some(code) => Ok(code),
        None => Err(failure(
            ctx,
            service,
            name,
            Condition::ServiceCompletedSuccessfully,
            &format!("did not finish within {}s", deadline.secs()),
        )
        .await),
    }
}
