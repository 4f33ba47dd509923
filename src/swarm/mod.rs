//! The stack on Docker Swarm: `up --swarm`, `status --swarm` and `down --swarm`.
//!
//! Deploying goes through `docker stack deploy --resolve-image never --prune` on the rendered
//! swarm target, not through bollard: it is the loader Dokploy's "Docker Stack" type runs on the
//! same file, so what `up --swarm` deploys and what Dokploy deploys cannot drift, and the Compose
//! → Swarm conversion (secrets and configs created from files, networks, healthchecks, update and
//! rollback policies, jobs) is not written a second time here. Everything else — the checks
//! before it, the wait for convergence, the status, the removal's wait — goes through the one
//! Docker facade (bollard). `--resolve-image never`: our images are built locally and are in no
//! registry, so the CLI must not ask one for digests.

mod converge;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use converge::{ServiceState, report};

use crate::config::Stack;
use crate::engine::{Docker, LABEL_STACK, SwarmRole, docker_host};
use crate::error::UserError;
use crate::render::{self, Target};
use crate::secrets::EnvFile;

/// The node label that pins PostgreSQL (and the backup service) to the node holding its volumes.
pub const DB_LABEL: &str = "stackctl.postgres";

/// Refuses, with what to do, an engine that is not a Swarm manager, or a Swarm with no node (or
/// more than one) labelled for the database. Nothing is deployed when this fails.
pub async fn preflight(docker: &Docker) -> Result<()> {
    match docker.swarm_role().await? {
        SwarmRole::Manager => {}
        SwarmRole::NotInSwarm => bail!(
            UserError::new(format!(
                "the Docker Engine at {} is not part of a Swarm: nothing was deployed",
                docker_host()
            ))
            .hint(format!(
                "make this engine a Swarm manager with `docker swarm init` (or join one: `docker swarm join`), then label the database node: `docker node update --label-add {DB_LABEL}=true NODE`"
            ))
        ),
        SwarmRole::Worker => bail!(
            UserError::new(format!(
                "the Docker Engine at {} is a Swarm worker, and only a manager can deploy: nothing was deployed",
                docker_host()
            ))
            .hint("run stackctl against a manager (`docker node ls` on one lists them; DOCKER_HOST can point at it)")
        ),
    }
    let nodes = docker.list_nodes().await?;
    let name = |n: &bollard::models::Node| {
        n.description
            .as_ref()
            .and_then(|d| d.hostname.clone())
            .or_else(|| n.id.clone())
            .unwrap_or_default()
    };
    let labelled: Vec<String> = nodes
        .iter()
        .filter(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.labels.as_ref())
                .and_then(|l| l.get(DB_LABEL))
                .is_some_and(|v| v == "true")
        })
        .map(name)
        .collect();
    match labelled.len() {
        1 => Ok(()),
        0 => {
            let all: Vec<String> = nodes.iter().map(name).collect();
            bail!(
                UserError::new(format!(
                    "no Swarm node carries the label {DB_LABEL}=true, so PostgreSQL has nowhere to run (nodes: {}): nothing was deployed",
                    all.join(", ")
                ))
                .hint(format!(
                    "label the node that is to hold the database's volumes: `docker node update --label-add {DB_LABEL}=true {}`",
                    all.first().map(String::as_str).unwrap_or("NODE")
                ))
            )
        }
        _ => bail!(
            UserError::new(format!(
                "{} Swarm nodes carry the label {DB_LABEL}=true ({}): PostgreSQL could move between them and start on an empty volume: nothing was deployed",
                labelled.len(),
                labelled.join(", ")
            ))
            .hint(format!(
                "keep it on the node that holds the data: `docker node update --label-rm {DB_LABEL} NODE` on the others"
            ))
        ),
    }
}

/// What `up --swarm` did.
pub struct Deployed {
    pub file: std::path::PathBuf,
    pub services: Vec<ServiceState>,
    pub seconds: f64,
}

/// Checks the Swarm, renders the swarm target, deploys it as stack `<project>` and waits until
/// every service has converged (replicas running and healthy, the migrate job completed).
pub async fn up(
    docker: &Docker,
    stack: &Stack,
    env: &EnvFile,
    within: Duration,
) -> Result<Deployed> {
    let started = Instant::now();
    preflight(docker).await?;
    let report = render::write_target(stack, env, Target::Swarm, None)?;
    let name = stack.project();
    deploy(&report.compose_path, name)?;
    let expected = services_of(&report.compose_path)?;
    let services = converge::wait(docker, name, &expected, within).await?;
    Ok(Deployed {
        file: report.compose_path,
        services,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `docker stack deploy` of `file` as stack `name`.
fn deploy(file: &Path, name: &str) -> Result<()> {
    let out = Command::new("docker")
        .args([
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "--prune",
            "--detach=true",
        ])
        .arg("--compose-file")
        .arg(file)
        .arg(name)
        .output()
        .context("running `docker stack deploy` (the Docker CLI must be installed)")?;
    if !out.status.success() {
        bail!(
            UserError::new(format!(
                "docker stack deploy of {} as stack {name} failed: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .hint("fix what it names in stack.toml or .env and run `stackctl up --swarm` again")
        );
    }
    Ok(())
}

/// The service names of a stack file.
fn services_of(file: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
    Ok(doc
        .get("services")
        .and_then(|s| s.as_mapping())
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// Every service of the deployed stack, as `status --swarm` prints it.
pub async fn status(docker: &Docker, stack: &str) -> Result<Vec<ServiceState>> {
    let now = converge::snapshot(docker, stack).await?;
    if now.is_empty() {
        bail!(
            UserError::new(format!("no stack {stack} is deployed on this Swarm"))
                .hint("deploy it with `stackctl up --swarm`")
        );
    }
    Ok(now.into_values().collect())
}

/// `docker stack rm`, then waits (up to `within`) until its containers and networks are gone,
/// so that the next `up --swarm` starts clean. Volumes are kept unless `remove_volumes` lists the
/// ones to remove (by their name in the stack file).
pub async fn down(
    docker: &Docker,
    stack: &str,
    remove_volumes: &[&str],
    within: Duration,
) -> Result<Vec<String>> {
    let out = Command::new("docker")
        .args(["stack", "rm", stack])
        .output()
        .context("running `docker stack rm` (the Docker CLI must be installed)")?;
    if !out.status.success() {
        bail!(UserError::new(format!(
            "docker stack rm {stack} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let label = format!("{LABEL_STACK}={stack}");
    let started = Instant::now();
    loop {
        use bollard::models::ContainerSummaryStateEnum as S;
        let containers = docker.list_containers(std::slice::from_ref(&label)).await?;
        // A completed job's task container (migrate) stays behind, exited: removed here.
        let (stopped, live): (Vec<_>, Vec<_>) = containers
            .iter()
            .partition(|c| matches!(c.state, Some(S::EXITED) | Some(S::DEAD) | Some(S::CREATED)));
        let networks = docker.list_networks(&label).await?;
        if live.is_empty() && networks.is_empty() {
            for c in stopped {
                if let Some(id) = &c.id {
                    docker.remove_container(id).await?;
                }
            }
            break;
        }
        if started.elapsed() >= within {
            bail!(UserError::new(format!(
                "stack {stack} was removed but {} containers and {} networks were still there after {} s",
                live.len(),
                networks.len(),
                within.as_secs()
            ))
            .hint("see `docker ps -a --filter label=com.docker.stack.namespace=NAME`, then run `stackctl down --swarm` again"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut removed = Vec::new();
    for v in docker.list_volumes(&label).await? {
        let short = v.strip_prefix(&format!("{stack}_")).unwrap_or(&v);
        if remove_volumes.contains(&short) {
            docker.remove_volume(&v).await?;
            removed.push(v);
        }
    }
    Ok(removed)
}
