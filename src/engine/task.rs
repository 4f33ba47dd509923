//! One-off tool containers: run a client program (pg_dump, pg_restore) from one of the stack's
//! images, collect its output, and remove the container whatever happens.
//!
//! A task runs with host networking, so it reaches exactly the addresses stackctl itself reaches
//! (a loopback port published by the stack, or a database on the internet). It carries the
//! project's labels with `oneoff=True`, so `stackctl down` also removes one left behind by a
//! killed stackctl. Every task has a deadline; [`remove_tasks`] removes this process's own tasks
//! by label (the caller does so on Ctrl-C), never those of another stackctl in the same project.

use std::time::Duration;

use anyhow::{Result, bail};
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use futures_util::StreamExt;

use super::docker::Docker;
use super::labels::{
    LABEL_INVOCATION, LABEL_ONEOFF, LABEL_PROJECT, LABEL_SERVICE, invocation_id, oneoff_name,
    task_labels,
};
use crate::error::UserError;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Task {
    /// Compose project the container is labelled with.
    pub project: String,
    /// What it is for (`import-dump`, `import-restore`): the service label and part of its name.
    pub purpose: String,
    pub image: String,
    pub cmd: Vec<String>,
    /// `KEY=value` pairs (passwords go here, never on the command line).
    pub env: Vec<String>,
    /// `host-path:container-path[:ro]` bind mounts.
    pub binds: Vec<String>,
    /// `uid:gid` to run as (so files written to a bind mount belong to the caller).
    pub user: Option<String>,
    /// How long it may run.
    pub deadline: Duration,
}

/// What it printed and how it ended.
#[derive(Debug)]
pub struct TaskOutput {
    pub code: i64,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl TaskOutput {
    /// The last `n` lines of stderr (for error messages).
    pub fn stderr_tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Runs `task` to completion (or its deadline, or Ctrl-C) and removes its container.
pub async fn run_task(docker: &Docker, task: &Task) -> Result<TaskOutput> {
    if docker.inspect_image(&task.image).await?.is_none() {
        bail!(
            UserError::new(format!("image {} is not on this machine", task.image))
                .hint("run `stackctl build postgres` (or `stackctl up`) first")
        );
    }
    let name = oneoff_name(&task.project, &task.purpose);
    let body = ContainerCreateBody {
        image: Some(task.image.clone()),
        cmd: Some(task.cmd.clone()),
        env: Some(task.env.clone()),
        labels: Some(task_labels(&task.project, &task.purpose)),
        user: task.user.clone(),
        host_config: Some(HostConfig {
            network_mode: Some("host".into()),
            binds: Some(task.binds.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker.create_container(&name, body).await?;
    let run = async {
        docker.start_container(&name).await?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut logs = docker.logs(&name, true, "all");
        while let Some(chunk) = logs.next().await {
            match chunk? {
                LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                _ => {}
            }
        }
        let code = docker.wait_container(&name).await?;
        Ok::<_, anyhow::Error>(TaskOutput {
            code,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    };
    let outcome = match tokio::time::timeout(task.deadline, run).await {
        Ok(r) => r,
        Err(_) => Err(UserError::new(format!(
            "{} ({}) did not finish within {} s",
            task.purpose,
            task.cmd.first().map(String::as_str).unwrap_or("?"),
            task.deadline.as_secs()
        ))
        .into()),
    };
    docker.remove_container(&name).await?;
    outcome
}

/// Removes (killing) every one-off task container this process started for `project` whose
/// purpose starts with `prefix`. Called on Ctrl-C, which may have cut a container's creation
/// short after Docker received it: a second pass, a moment later, removes one that appeared
/// after the first.
pub async fn remove_tasks(docker: &Docker, project: &str, prefix: &str) -> Result<usize> {
    let mine = Some(invocation_id());
    let first = remove_tasks_once(docker, project, prefix, mine).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(first + remove_tasks_once(docker, project, prefix, mine).await?)
}

/// Removes (killing) the one-off task containers of `project` whose purpose starts with
/// `prefix`, whichever process started them: for a command that holds the stack's lock
/// (`stacklock`), any such container is left behind by a run of it that was killed.
pub async fn remove_orphaned_tasks(docker: &Docker, project: &str, prefix: &str) -> Result<usize> {
    remove_tasks_once(docker, project, prefix, None).await
}

async fn remove_tasks_once(
    docker: &Docker,
    project: &str,
    prefix: &str,
    invocation: Option<&str>,
) -> Result<usize> {
    let mut filters = vec![
        format!("{LABEL_PROJECT}={project}"),
        format!("{LABEL_ONEOFF}=True"),
    ];
    if let Some(id) = invocation {
        filters.push(format!("{LABEL_INVOCATION}={id}"));
    }
    let list = docker.list_containers(&filters).await?;
    let mut n = 0;
    for c in list {
        let purpose = c
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_SERVICE))
            .map(String::as_str)
            .unwrap_or("");
        if let (true, Some(id)) = (purpose.starts_with(prefix), c.id.as_deref()) {
            docker.remove_container(id).await?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the real Docker Engine and our PostgreSQL image (built before the tests run):
    /// a task that outlives its deadline is stopped with an error naming it, and its container
    /// is removed.
    #[tokio::test]
    async fn a_task_past_its_deadline_is_named_and_its_container_removed() {
        let docker = Docker::connect()
            .await
            .expect("the tests need a running Docker Engine");
        let project = format!("stackctl-unit-deadline-{}", std::process::id());
        let task = Task {
            project: project.clone(),
            purpose: "deadline-check".into(),
            image: "stackctl/postgres:17".into(),
            cmd: vec!["sleep".into(), "60".into()],
            deadline: Duration::from_secs(2),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let err = run_task(&docker, &task).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err.to_string(),
            "deadline-check (sleep) did not finish within 2 s"
        );
        let left = docker
            .list_containers(&[format!("{LABEL_PROJECT}={project}")])
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}
