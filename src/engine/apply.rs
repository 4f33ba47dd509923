//! Applying a plan: networks, volumes, images, then containers in `depends_on` order.
//!
//! Every selected service runs as its own task; a task first waits for the conditions of its
//! dependencies (published by the dependencies' tasks through watch channels), then creates /
//! recreates / starts its replicas, publishes `Started`, and waits for its own readiness:
//! healthy (if it has a healthcheck), exited 0 (a `restart: "no"` job without healthcheck), or
//! nothing more. Independent services therefore start in parallel.
//!
//! Readiness is polled every 200 ms. Besides reading Docker's health status we exec the service's
//! own healthcheck test in the container on each tick while Docker still says `starting`: Docker
//! runs the first check only one `interval` after start, so waiting for it alone would add up to an
//! interval per service on the critical path. A zero exit of the very same test releases the
//! service's dependents at once. The service itself is reported `healthy` (and `up` returns) only
//! once Docker has recorded it too, so `up`, `stackctl status` and `docker ps` never disagree;
//! that costs at most one `interval` at the end, not one per service. Docker's own `unhealthy`
//! verdict still fails the wait, and every wait has a deadline (`--wait-timeout`).

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, EndpointSettings, HealthConfig,
    HealthStatusEnum, HostConfig, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use futures_util::future::join_all;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::docker::{Docker, LABEL_PROJECT};
use super::plan::{Action, Desired, Observed, plan};
use crate::compose::{Condition, Project, Restart, Service, VolumeSource};
use crate::error::UserError;

pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
pub const LABEL_HASH: &str = "com.docker.compose.config-hash";
const LOG_TAIL: usize = 30;
const TICK: Duration = Duration::from_millis(200);

pub struct UpOptions {
    pub only: Vec<String>,
    pub without: Vec<String>,
    pub wait_timeout: Duration,
}

// ---- progress -----------------------------------------------------------------------------------

/// Per-service progress: spinners on a terminal, plain lines otherwise.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<ProgressInner>,
}

struct ProgressInner {
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    width: usize,
}

impl Progress {
    pub fn new(services: &[String]) -> Progress {
        let multi = std::io::stderr().is_terminal().then(MultiProgress::new);
        let width = services.iter().map(String::len).max().unwrap_or(8);
        let mut bars = BTreeMap::new();
        if let Some(m) = &multi {
            let style = ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for s in services {
                let b = m.add(
                    ProgressBar::new_spinner()
                        .with_style(style.clone())
                        .with_prefix(format!("{s:width$}")),
                );
                b.enable_steady_tick(Duration::from_millis(120));
                b.set_message("waiting");
                bars.insert(s.clone(), b);
            }
        }
        Progress {
            inner: Arc::new(ProgressInner {
                multi,
                bars: Mutex::new(bars),
                width,
            }),
        }
    }

    pub fn set(&self, service: &str, msg: impl Into<String>) {
        let msg = msg.into();
        let bars = self.inner.bars.lock().unwrap_or_else(|e| e.into_inner());
        match bars.get(service) {
            Some(b) => b.set_message(msg),
            None => {
                let w = self.inner.width;
                match &self.inner.multi {
                    Some(m) => {
                        let _ = m.println(format!("  {service:w$} {msg}"));
                    }
                    None => eprintln!("{service:w$} {msg}"),
                }
            }
        }
    }

    pub fn finish(&self, service: &str, msg: impl Into<String>) {
        let msg = msg.into();
        let bars = self.inner.bars.lock().unwrap_or_else(|e| e.into_inner());
        match bars.get(service) {
            Some(b) => b.finish_with_message(msg),
            None => {
                drop(bars);
                self.set(service, msg)
            }
        }
    }

    pub fn done(&self) {
        let bars = self.inner.bars.lock().unwrap_or_else(|e| e.into_inner());
        for b in bars.values() {
            if !b.is_finished() {
                b.finish();
            }
        }
    }
}

// ---- naming and labels --------------------------------------------------------------------------

pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

pub fn network_name(project: &str, network: &str) -> String {
    format!("{project}_{network}")
}

pub fn volume_name(project: &str, volume: &str) -> String {
    format!("{project}_{volume}")
}

fn compose_version() -> String {
    format!("stackctl-{}", env!("CARGO_PKG_VERSION"))
}

/// The networks a service joins (Compose's implicit `default` when it names none).
pub fn service_networks(svc: &Service) -> Vec<(String, Vec<String>)> {
    if svc.networks.is_empty() {
        vec![("default".to_string(), Vec::new())]
    } else {
        svc.networks
            .iter()
            .map(|(n, s)| (n.clone(), s.aliases.clone()))
            .collect()
    }
}

/// A run-to-completion service: `restart: "no"` and no healthcheck (like `migrate`).
pub fn is_job(svc: &Service) -> bool {
    svc.restart == Some(Restart::No)
        && svc
            .healthcheck
            .as_ref()
            .and_then(|h| h.exec_command())
            .is_none()
}

/// sha256 of the interpolated service definition plus the contents of its config files, and for a
/// job also the contents of its bind mounts (a job that succeeded is not re-run while they stay
/// the same: see `plan`).
pub fn config_hash(project: &Project, svc: &Service) -> Result<String> {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(svc).context("serialising a service definition")?);
    for c in &svc.configs {
        let path = project.host_path(&project.file.configs[&c.source].file);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading config `{}` from {}", c.source, path.display()))?;
        h.update(format!("\0config:{}\0", c.source).as_bytes());
        h.update(&bytes);
    }
    if is_job(svc) {
        for v in &svc.volumes {
            if let VolumeSource::Bind(b) = &v.source {
                hash_tree(&mut h, &project.host_path(b), 0)?;
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Hashes the names and contents of the regular files under `path` (sorted, bounded depth).
fn hash_tree(h: &mut Sha256, path: &std::path::Path, depth: usize) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        h.update(format!("\0file:{}:{}\0", path.display(), bytes.len()).as_bytes());
        h.update(&bytes);
    } else if meta.is_dir() && depth < 8 {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            hash_tree(h, &e, depth + 1)?;
        }
    }
    Ok(())
}

/// The tar of a service's config files, uploaded at `/` before each start.
pub fn config_tar(project: &Project, svc: &Service) -> Result<Option<Vec<u8>>> {
    if svc.configs.is_empty() {
        return Ok(None);
    }
    let mut b = tar::Builder::new(Vec::new());
    for c in &svc.configs {
        let path = project.host_path(&project.file.configs[&c.source].file);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading config `{}` from {}", c.source, path.display()))?;
        let mut hdr = tar::Header::new_gnu();
        hdr.set_size(bytes.len() as u64);
        hdr.set_mode(c.mode.unwrap_or(0o444));
        hdr.set_uid(c.uid.unwrap_or(0));
        hdr.set_gid(c.gid.unwrap_or(0));
        hdr.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        hdr.set_entry_type(tar::EntryType::Regular);
        let target = c.target_path();
        b.append_data(&mut hdr, target.trim_start_matches('/'), bytes.as_slice())
            .with_context(|| format!("packing config {target}"))?;
    }
    Ok(Some(b.into_inner()?))
}

fn nanos(d: Option<Duration>) -> Option<i64> {
    d.map(|d| d.as_nanos() as i64)
}

/// The create body for one replica; the first network goes in the body, the rest are returned to
/// be connected before start (API 1.41 accepts one endpoint at create).
pub fn container_body(
    project: &Project,
    service: &str,
    svc: &Service,
    number: u32,
    hash: &str,
    image_id: &str,
    oneoff: bool,
) -> (ContainerCreateBody, Vec<(String, Vec<String>)>) {
    let p = &project.name;
    let mut labels: HashMap<String, String> = svc
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let depends: Vec<String> = svc
        .depends_on
        .iter()
        .map(|(d, c)| format!("{d}:{}:false", c.condition.as_str()))
        .collect();
    for (k, v) in [
        (LABEL_PROJECT, p.clone()),
        (LABEL_SERVICE, service.to_string()),
        (LABEL_NUMBER, number.to_string()),
        (
            LABEL_ONEOFF,
            if oneoff { "True" } else { "False" }.to_string(),
        ),
        (LABEL_HASH, hash.to_string()),
        (
            "com.docker.compose.project.working_dir",
            project.working_dir.display().to_string(),
        ),
        (
            "com.docker.compose.project.config_files",
            project.config_file.display().to_string(),
        ),
        ("com.docker.compose.depends_on", depends.join(",")),
        ("com.docker.compose.image", image_id.to_string()),
        ("com.docker.compose.version", compose_version()),
    ] {
        labels.insert(k.to_string(), v);
    }
    let env: Vec<String> = svc
        .environment
        .iter()
        .filter_map(|(k, v)| match v {
            Some(v) => Some(format!("{k}={v}")),
            None => std::env::var(k).ok().map(|v| format!("{k}={v}")),
        })
        .collect();
    let binds: Vec<String> = svc
        .volumes
        .iter()
        .map(|v| {
            let src = match &v.source {
                VolumeSource::Named(n) => volume_name(p, n),
                VolumeSource::Bind(b) => project.host_path(b).display().to_string(),
            };
            format!(
                "{src}:{}:{}",
                v.target,
                if v.read_only { "ro" } else { "rw" }
            )
        })
        .collect();
    let mut exposed: Vec<String> = svc.expose.clone();
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &svc.ports {
        let key = format!("{}/{}", port.container_port, port.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: port.host_ip.clone(),
                host_port: Some(port.host_port.map(|p| p.to_string()).unwrap_or_default()),
            });
    }
    let restart = svc.restart.map(|r| RestartPolicy {
        name: Some(match r {
            Restart::No => RestartPolicyNameEnum::NO,
            Restart::Always => RestartPolicyNameEnum::ALWAYS,
            Restart::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
            Restart::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
        }),
        maximum_retry_count: None,
    });
    let healthcheck = svc.healthcheck.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()),
        interval: nanos(h.interval),
        timeout: nanos(h.timeout),
        retries: h.retries.map(i64::from),
        start_period: nanos(h.start_period),
        start_interval: None,
    });
    let mut nets = service_networks(svc).into_iter().map(|(n, mut aliases)| {
        aliases.insert(0, service.to_string());
        (network_name(p, &n), aliases)
    });
    let first = nets.next();
    let rest: Vec<_> = nets.collect();
    let body = ContainerCreateBody {
        image: Some(svc.image.clone()),
        cmd: svc.command.clone(),
        entrypoint: svc.entrypoint.clone(),
        env: Some(env),
        labels: Some(labels),
        user: svc.user.clone(),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        stop_timeout: svc.stop_grace_period.map(|d| d.as_secs() as i64),
        host_config: Some(HostConfig {
            binds: Some(binds),
            port_bindings: Some(port_bindings),
            restart_policy: restart,
            network_mode: first.as_ref().map(|(n, _)| n.clone()),
            ..Default::default()
        }),
        networking_config: first.map(|(n, aliases)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                n,
                EndpointSettings {
                    aliases: Some(aliases),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    (body, rest)
}

// ---- the up flow -------------------------------------------------------------------------------

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
        let labels = HashMap::from([
            (LABEL_PROJECT.to_string(), p.clone()),
            ("com.docker.compose.network".to_string(), n.clone()),
            ("com.docker.compose.version".to_string(), compose_version()),
        ]);
        docker.create_network(&full, labels).await?;
    }
    for v in vols {
        let full = volume_name(p, &v);
        if docker.volume_exists(&full).await? {
            continue;
        }
        let labels = HashMap::from([
            (LABEL_PROJECT.to_string(), p.clone()),
            ("com.docker.compose.volume".to_string(), v.clone()),
            ("com.docker.compose.version".to_string(), compose_version()),
        ]);
        docker.create_volume(&full, labels).await?;
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
    let deadline = tokio::time::Instant::now() + ctx.wait_timeout;
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
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(anyhow!(DependencyFailed)),
            Err(_) => bail!(
                UserError::new(format!(
                    "service `{service}`: `{dep}` did not reach {} within {}s",
                    cond.as_str(),
                    ctx.wait_timeout.as_secs()
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

    if svc
        .healthcheck
        .as_ref()
        .is_some_and(|h| h.exec_command().is_some())
    {
        ctx.progress.set(service, "waiting for health");
        let started = Instant::now();
        let waits = names
            .iter()
            .map(|n| wait_healthy(ctx, service, n, started, Probe::AlsoOwn));
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
            .map(|n| wait_healthy(ctx, service, n, started, Probe::DockerOnly));
        join_all(waits)
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()?;
        ctx.progress.finish(service, "healthy");
    } else if is_job(svc) {
        ctx.progress.set(service, "running to completion");
        let waits = names.iter().map(|n| wait_exit(ctx, service, n));
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
    } else {
        ctx.progress.finish(service, "started");
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
            let (_, extra) = container_body(&ctx.project, service, svc, *number, "", "", false);
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
    let (body, extra) = container_body(
        &ctx.project,
        service,
        svc,
        number,
        &ctx.hashes[service],
        &image_id,
        false,
    );
    ctx.progress.set(service, "creating");
    let id = match ctx.docker.create_container(&name, body.clone()).await {
        Ok(id) => id,
        Err(e)
            if format!("{e:#}").contains("Conflict")
                || format!("{e:#}").contains("already in use") =>
        {
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
                return Err(e.context(format!(
                    "a container named {name} exists and does not belong to project {}",
                    ctx.project.name
                )));
            }
            ctx.docker.remove_container(&name).await?;
            ctx.docker.create_container(&name, body).await?
        }
        Err(e) => return Err(e),
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
        let text = format!("{e:#}");
        if text.contains("port is already allocated") || text.contains("address already in use") {
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

/// Whose word [`wait_healthy`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Docker's health status, or a zero exit of the healthcheck test run by us.
    AlsoOwn,
    /// Docker's health status only (what `status` and `docker ps` show).
    DockerOnly,
}

/// Waits until container `name` is healthy by `probe`'s standard; the deadline runs from `started`.
async fn wait_healthy(
    ctx: &Ctx,
    service: &str,
    name: &str,
    started: Instant,
    probe: Probe,
) -> Result<()> {
    let svc = &ctx.project.file.services[service];
    let hc = svc.healthcheck.as_ref().context("a healthcheck")?;
    let own = match probe {
        Probe::AlsoOwn => hc.exec_command(),
        Probe::DockerOnly => None,
    };
    let probe_timeout = hc
        .timeout
        .unwrap_or(Duration::from_secs(30))
        .min(Duration::from_secs(10));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cond = Condition::ServiceHealthy;
    loop {
        tick.tick().await;
        let Some(c) = ctx.docker.inspect_container(name).await? else {
            bail!(
                "service `{service}`: container {name} disappeared while waiting for it to become healthy"
            );
        };
        let state = c.state.unwrap_or_default();
        match state.status {
            // Exited, or a crash loop under a restart policy: fail now rather than at the deadline.
            Some(
                status @ (ContainerStateStatusEnum::EXITED
                | ContainerStateStatusEnum::DEAD
                | ContainerStateStatusEnum::RESTARTING),
            ) => {
                let code = state.exit_code.unwrap_or(-1);
                let restarting = if status == ContainerStateStatusEnum::RESTARTING {
                    " and is restarting,"
                } else {
                    ""
                };
                return Err(failure(
                    ctx,
                    service,
                    name,
                    cond,
                    &format!("exited with code {code}{restarting} before it became healthy"),
                )
                .await);
            }
            Some(ContainerStateStatusEnum::RUNNING) => {
                match state.health.and_then(|h| h.status) {
                    Some(HealthStatusEnum::HEALTHY) => return Ok(()),
                    Some(HealthStatusEnum::UNHEALTHY) => {
                        return Err(failure(
                            ctx,
                            service,
                            name,
                            cond,
                            "is unhealthy (its healthcheck kept failing)",
                        )
                        .await);
                    }
                    _ => {}
                }
                if let Some(cmd) = &own
                    && let Ok(Some(0)) = ctx.docker.exec(name, cmd.clone(), probe_timeout).await
                {
                    return Ok(());
                }
            }
            _ => {}
        }
        if started.elapsed() >= ctx.wait_timeout {
            let secs = ctx.wait_timeout.as_secs();
            let what = match probe {
                Probe::AlsoOwn => format!("did not become healthy within {secs}s"),
                Probe::DockerOnly => format!(
                    "passed its healthcheck, but Docker had not recorded it healthy within {secs}s \
                     (Docker checks every healthcheck `interval`; raise --wait-timeout or shorten it)"
                ),
            };
            return Err(failure(ctx, service, name, cond, &what).await);
        }
    }
}

async fn wait_exit(ctx: &Ctx, service: &str, name: &str) -> Result<i64> {
    match tokio::time::timeout(ctx.wait_timeout, ctx.docker.wait_container(name)).await {
        Ok(code) => code,
        Err(_) => Err(failure(
            ctx,
            service,
            name,
            Condition::ServiceCompletedSuccessfully,
            &format!("did not finish within {}s", ctx.wait_timeout.as_secs()),
        )
        .await),
    }
}
