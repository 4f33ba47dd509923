//! `down`, `status`, `logs` and one-off runs: everything found by the project label.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bollard::container::LogOutput;
use futures_util::StreamExt;
use futures_util::future::join_all;
use serde::Serialize;

use super::apply;
use super::docker::Docker;
use super::labels::{
    LABEL_NUMBER, LABEL_ONEOFF, LABEL_PROJECT, LABEL_SERVICE, Replica, oneoff_name, volume_name,
};
use super::spec::{config_hash, config_tar, container_body};
use crate::compose::Project;
use crate::config::Stack;
use crate::error::UserError;

/// Which volumes `down` removes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Volumes {
    Keep,
    /// All but the one named (a volume of the Compose file, e.g. the backup repository).
    RemoveExcept(&'static str),
    RemoveAll,
}

/// Removes the project's containers (one-off runs too) and networks; volumes only when asked.
pub async fn down(docker: &Docker, project: &str, volumes: Volumes) -> Result<()> {
    let label = format!("{LABEL_PROJECT}={project}");
    let containers = docker.list_containers(std::slice::from_ref(&label)).await?;
    let removals = containers.iter().map(|c| async move {
        let id = c.id.clone().unwrap_or_default();
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| id.clone());
        // No timeout given: Docker uses the container's own stop timeout (stop_grace_period).
        docker.stop_container(&id, None).await?;
        docker.remove_container(&id).await?;
        println!("removed container {name}");
        Ok::<(), anyhow::Error>(())
    });
    for r in join_all(removals).await {
        r?;
    }
    for n in docker.list_networks(&label).await? {
        docker.remove_network(&n).await?;
        println!("removed network {n}");
    }
    if volumes != Volumes::Keep {
        for v in docker.list_volumes(&label).await? {
            if let Volumes::RemoveExcept(keep) = volumes
                && v == volume_name(project, keep)
            {
                println!(
                    "kept volume {v} (the backup repository; --include-backups --yes removes it)"
                );
                continue;
            }
            docker.remove_volume(&v).await?;
            println!("removed volume {v}");
        }
    }
    Ok(())
}

/// Stops (does not remove) every running service container of the project, `last` after all
/// the others (the database after the services that use it); returns the services stopped.
pub async fn stop_services(docker: &Docker, project: &str, last: &str) -> Result<Vec<String>> {
    use bollard::models::ContainerSummaryStateEnum as S;
    let list = docker
        .list_containers(&[
            format!("{LABEL_PROJECT}={project}"),
            format!("{LABEL_ONEOFF}=False"),
        ])
        .await?;
    let running: Vec<(String, String)> = list
        .iter()
        .filter(|c| matches!(c.state, Some(S::RUNNING)))
        .filter_map(|c| {
            let service = c.labels.as_ref()?.get(LABEL_SERVICE)?.clone();
            Some((service, c.id.clone()?))
        })
        .collect();
    let (db, others): (Vec<_>, Vec<_>) = running.into_iter().partition(|(s, _)| s == last);
    let mut stopped = Vec::new();
    for group in [others, db] {
        let stops = group.iter().map(|(_, id)| docker.stop_container(id, None));
        for r in join_all(stops).await {
            r?;
        }
        stopped.extend(group.into_iter().map(|(s, _)| s));
    }
    stopped.sort();
    stopped.dedup();
    Ok(stopped)
}

#[derive(Debug, Serialize)]
struct Row {
    service: String,
    container: String,
    number: u32,
    state: String,
    health: String,
    image: String,
    ports: Vec<String>,
    uptime_seconds: Option<i64>,
}

pub async fn status(docker: &Docker, project: &str, json: bool) -> Result<()> {
    let list = docker
        .list_containers(&[
            format!("{LABEL_PROJECT}={project}"),
            format!("{LABEL_ONEOFF}=False"),
        ])
        .await?;
    let mut rows = Vec::new();
    for c in list {
        let labels = c.labels.clone().unwrap_or_default();
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default();
        let inspect = docker.inspect_container(&name).await?;
        let state = inspect
            .as_ref()
            .and_then(|i| i.state.clone())
            .unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let uptime = state
            .started_at
            .as_deref()
            .filter(|_| running)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds());
        let mut ports: Vec<String> = c
            .ports
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                p.public_port.map(|pp| {
                    format!(
                        "{}:{}->{}",
                        p.ip.clone().unwrap_or_default(),
                        pp,
                        p.private_port
                    )
                })
            })
            .collect();
        ports.sort();
        ports.dedup();
        rows.push(Row {
            service: labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
            number: labels
                .get(LABEL_NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            container: name,
            state: state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "-".into()),
            image: c.image.unwrap_or_default(),
            ports,
            uptime_seconds: uptime,
        });
    }
    rows.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no containers for project {project} (run `stackctl up`)");
        return Ok(());
    }
    let w = rows
        .iter()
        .map(|r| r.container.len())
        .max()
        .unwrap_or(9)
        .max(9);
    println!(
        "{:w$}  {:8}  {:9}  {:8}  {:30}  PORTS",
        "CONTAINER", "STATE", "HEALTH", "UPTIME", "IMAGE"
    );
    for r in &rows {
        let up = r.uptime_seconds.map(human).unwrap_or_else(|| "-".into());
        println!(
            "{:w$}  {:8}  {:9}  {:8}  {:30}  {}",
            r.container,
            r.state,
            r.health,
            up,
            r.image,
            r.ports.join(", ")
        );
    }
    Ok(())
}

fn human(s: i64) -> String {
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Splits log chunks into lines, keeping a partial last line for the next chunk.
#[derive(Default)]
struct LineBuf {
    pending: Vec<u8>,
}

impl LineBuf {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            out.push(
                String::from_utf8_lossy(&line[..line.len() - 1])
                    .trim_end_matches('\r')
                    .to_string(),
            );
        }
        out
    }

    fn rest(&mut self) -> Option<String> {
        (!self.pending.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned())
    }
}

/// Which log lines to print, and how.
pub struct LogView<'a> {
    pub follow: bool,
    pub tail: &'a str,
    /// Print only the lines this accepts.
    pub keep: &'a (dyn Fn(&str) -> bool + Sync),
    /// Prefix each line with its service (and replica number).
    pub prefix: bool,
}

pub async fn logs(
    docker: &Docker,
    project: &str,
    services: &[String],
    follow: bool,
    tail: &str,
) -> Result<()> {
    let view = LogView {
        follow,
        tail,
        keep: &|_| true,
        prefix: true,
    };
    logs_where(docker, project, services, &view).await
}

/// The services' logs through `view`: one stream per container, lines merged as they come
/// when following.
pub async fn logs_where(
    docker: &Docker,
    project: &str,
    services: &[String],
    view: &LogView<'_>,
) -> Result<()> {
    let (follow, tail) = (view.follow, view.tail);
    let list = docker
        .list_containers(&[
            format!("{LABEL_PROJECT}={project}"),
            format!("{LABEL_ONEOFF}=False"),
        ])
        .await?;
    let mut found: Vec<(String, u32, String)> = list
        .iter()
        .filter_map(|c| {
            let s = c.labels.as_ref()?.get(LABEL_SERVICE)?.clone();
            let (n, name) = number_and_name(c)?;
            Some((s, n, name))
        })
        .filter(|(s, _, _)| services.is_empty() || services.contains(s))
        .collect();
    for s in services {
        if !found.iter().any(|(f, _, _)| f == s) {
            bail!(
                UserError::new(format!(
                    "no container of service `{s}` in project {project}"
                ))
                .hint("see `stackctl status`")
            );
        }
    }
    found.sort();
    let mut replicas: BTreeMap<&str, usize> = BTreeMap::new();
    for (s, _, _) in &found {
        *replicas.entry(s.as_str()).or_default() += 1;
    }
    let prefixes: Vec<String> = found
        .iter()
        .map(|(s, n, _)| {
            if replicas[s.as_str()] > 1 || *n > 1 {
                format!("{s}-{n}")
            } else {
                s.clone()
            }
        })
        .collect();
    let w = prefixes.iter().map(String::len).max().unwrap_or(0);
    let streams = found.iter().zip(&prefixes).map(|((_, _, name), prefix)| {
        let prefix = format!("{prefix:w$} | ");
        docker
            .logs(name, follow, tail)
            .map(move |r| (prefix.clone(), r))
            .boxed()
    });
    let print = |prefix: &str, line: &str| {
        if !(view.keep)(line) {
            return;
        }
        let mut out = std::io::stdout().lock();
        let prefix = if view.prefix { prefix } else { "" };
        let _ = writeln!(out, "{prefix}{line}");
    };
    if follow {
        let mut bufs: BTreeMap<String, LineBuf> = BTreeMap::new();
        let mut all = futures_util::stream::select_all(streams);
        while let Some((prefix, r)) = all.next().await {
            let chunk = r?;
            for line in bufs
                .entry(prefix.clone())
                .or_default()
                .push(&chunk.into_bytes())
            {
                print(&prefix, &line);
            }
        }
    } else {
        for mut s in streams {
            let mut buf = LineBuf::default();
            let mut last_prefix = String::new();
            while let Some((prefix, r)) = s.next().await {
                for line in buf.push(&r?.into_bytes()) {
                    print(&prefix, &line);
                }
                last_prefix = prefix;
            }
            if let Some(rest) = buf.rest() {
                print(&last_prefix, &rest);
            }
        }
    }
    Ok(())
}

/// The name of a running container of `service` (the lowest-numbered one), for `exec`.
pub async fn running_container(docker: &Docker, project: &str, service: &str) -> Result<String> {
    use bollard::models::ContainerSummaryStateEnum as S;
    let list = docker
        .list_containers(&[
            format!("{LABEL_PROJECT}={project}"),
            format!("{LABEL_SERVICE}={service}"),
            format!("{LABEL_ONEOFF}=False"),
        ])
        .await?;
    let mut running: Vec<(u32, String)> = list
        .iter()
        .filter(|c| matches!(c.state, Some(S::RUNNING)))
        .filter_map(number_and_name)
        .collect();
    running.sort();
    if running.is_empty() {
        // A Swarm deployment (`up --swarm`): its task containers carry the stack's labels.
        let mut tasks: Vec<String> = docker
            .list_containers(&[
                format!("{}={project}", super::LABEL_STACK),
                format!("com.docker.swarm.service.name={project}_{service}"),
            ])
            .await?
            .iter()
            .filter(|c| matches!(c.state, Some(S::RUNNING)))
            .filter_map(|c| {
                c.names
                    .as_ref()?
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
            })
            .collect();
        tasks.sort();
        running.extend(tasks.into_iter().map(|n| (0, n)));
    }
    match running.into_iter().next() {
        Some((_, name)) => Ok(name),
        None => bail!(
            UserError::new(format!(
                "no running container of service `{service}` in project {project}"
            ))
            .hint(format!("start it with `stackctl up {service}`"))
        ),
    }
}

/// How long a one-off run may take unless its caller says otherwise: an hour, far beyond any
/// admin command and any migration we expect, yet a run that hangs still ends.
pub const ONEOFF_DEADLINE: Duration = Duration::from_secs(3600);

/// Runs one container of `service` once, like `docker compose run --rm -e K=V SERVICE`, streaming
/// its output; returns its exit code. `env` adds to (or overrides) the service's environment.
/// A run still going at `deadline` is an error; its container is removed whatever happens.
pub async fn run_oneoff(
    docker: &Docker,
    _stack: &Stack,
    project: &Project,
    service: &str,
    command: Option<Vec<String>>,
    env: &[(String, String)],
    deadline: Duration,
) -> Result<i64> {
    let svc = &project.file.services[service];
    apply::ensure_networks_and_volumes(docker, project, &[service.to_string()]).await?;
    let image_id = docker
        .inspect_image(&svc.image)
        .await?
        .and_then(|i| i.id)
        .with_context(|| {
            UserError::new(format!("image {} is not on this machine", svc.image))
                .hint("run `stackctl build` or `stackctl up` first")
        })?;
    let hash = config_hash(project, svc)?;
    let name = oneoff_name(&project.name, service);
    let replica = Replica {
        service,
        number: 1,
        config_hash: &hash,
        image_id: &image_id,
        oneoff: true,
    };
    let (mut body, extra) = container_body(project, svc, &replica);
    if let Some(hc) = body.host_config.as_mut() {
        hc.port_bindings = None;
        hc.restart_policy = None;
    }
    if command.is_some() {
        body.cmd = command;
    }
    if !env.is_empty() {
        let vars = body.env.get_or_insert_with(Vec::new);
        for (k, v) in env {
            vars.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
            vars.push(format!("{k}={v}"));
        }
    }
    let id = docker.create_container(&name, body).await?;
    let run = async {
        for (net, aliases) in extra {
            docker.connect_network(&net, &id, aliases).await?;
        }
        if let Some(tar) = config_tar(project, svc)? {
            docker.upload_tar(&id, tar).await?;
        }
        docker.start_container(&name).await?;
        // The container's stderr goes to ours and its stdout to ours, so a caller can capture
        // what the command prints (a token, JSON) apart from its messages.
        let mut stream = docker.logs(&name, true, "all");
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        while let Some(chunk) = stream.next().await {
            match chunk? {
                LogOutput::StdErr { message } => {
                    let _ = out.flush();
                    let _ = err.write_all(&message);
                }
                other => {
                    let _ = out.write_all(&other.into_bytes());
                }
            }
        }
        let _ = out.flush();
        Ok::<_, anyhow::Error>(docker.wait_container(&name).await?)
    };
    let result = match tokio::time::timeout(deadline, run).await {
        Ok(r) => r,
        Err(_) => Err(UserError::new(format!(
            "the one-off `{service}` container {name} did not finish within {}s; it was removed",
            deadline.as_secs()
        ))
        .hint(format!(
            "its output is above; see whether `{service}` waits on something that is not up (`stackctl status`)"
        ))
        .into()),
    };
    docker.remove_container(&id).await?;
    result
}

/// A container's replica number (label, 1 when absent) and its name without the leading `/`.
fn number_and_name(c: &bollard::models::ContainerSummary) -> Option<(u32, String)> {
    let n = c
        .labels
        .as_ref()?
        .get(LABEL_NUMBER)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let name = c
        .names
        .as_ref()?
        .first()?
        .trim_start_matches('/')
        .to_string();
    Some((n, name))
}
