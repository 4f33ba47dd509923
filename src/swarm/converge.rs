//! Whether a Swarm service has converged, as data: from its spec and its tasks (pure, tested
//! without Docker), then the wait with a deadline and the per-service report.
//!
//! Swarm reports a task `running` only once its container's healthcheck has passed (it stays
//! `starting` until then), so "running" here means healthy wherever a healthcheck exists.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bollard::models::{Service, Task, TaskState};

use crate::engine::Docker;
use crate::error::UserError;

/// One service of a stack, as the wait and `status --swarm` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    /// The service's name in the stack file (`postgres`), not Swarm's (`stack_postgres`).
    pub name: String,
    pub mode: Mode,
    /// Tasks running (replicated, global) or completed (job).
    pub ready: u64,
    /// Tasks wanted: replicas, the nodes a global service runs on, or a job's completions.
    pub desired: u64,
    /// The newest task's failure, if its newest task failed or was rejected.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replicated,
    Global,
    Job,
}

impl ServiceState {
    pub fn converged(&self) -> bool {
        self.desired > 0 && self.ready >= self.desired
    }
}

/// The state of `service` (named `name` in the stack file) from its tasks.
pub fn service_state(name: &str, service: &Service, tasks: &[Task]) -> ServiceState {
    let mode = service.spec.as_ref().and_then(|s| s.mode.as_ref());
    let (mode, replicas) = match mode {
        Some(m) if m.global.is_some() => (Mode::Global, None),
        Some(m) if m.replicated_job.is_some() => (
            Mode::Job,
            Some(
                m.replicated_job
                    .as_ref()
                    .and_then(|j| j.total_completions)
                    .unwrap_or(1),
            ),
        ),
        Some(m) => (
            Mode::Replicated,
            Some(m.replicated.as_ref().and_then(|r| r.replicas).unwrap_or(1)),
        ),
        None => (Mode::Replicated, Some(1)),
    };
    let state = |t: &Task| t.status.as_ref().and_then(|s| s.state);
    let (ready, desired) = match mode {
        Mode::Job => {
            let done = tasks
                .iter()
                .filter(|t| state(t) == Some(TaskState::COMPLETE))
                .count() as u64;
            (done, replicas.unwrap_or(1).max(0) as u64)
        }
        Mode::Replicated | Mode::Global => {
            let wanted: Vec<&Task> = tasks
                .iter()
                .filter(|t| t.desired_state == Some(TaskState::RUNNING))
                .collect();
            let running = wanted
                .iter()
                .filter(|t| state(t) == Some(TaskState::RUNNING))
                .count() as u64;
            let desired = match replicas {
                Some(r) => r.max(0) as u64,
                // A global service wants one task per eligible node: those Swarm scheduled.
                None => (wanted.len() as u64).max(1),
            };
            (running, desired)
        }
    };
    let newest = tasks
        .iter()
        .filter(|t| {
            t.status
                .as_ref()
                .and_then(|s| s.timestamp.as_ref())
                .is_some()
        })
        .max_by_key(|t| {
            t.status
                .as_ref()
                .and_then(|s| s.timestamp.clone())
                .map(|d| d.to_string())
        });
    let last_error = newest.and_then(|t| {
        let st = t.status.as_ref()?;
        matches!(
            st.state,
            Some(TaskState::FAILED) | Some(TaskState::REJECTED)
        )
        .then(|| {
            st.err
                .clone()
                .or_else(|| st.message.clone())
                .unwrap_or_else(|| "failed".into())
        })
    });
    ServiceState {
        name: name.to_string(),
        mode,
        ready,
        desired,
        last_error,
    }
}

/// Every service of stack `stack`, by its name in the stack file.
pub async fn snapshot(docker: &Docker, stack: &str) -> Result<BTreeMap<String, ServiceState>> {
    let mut out = BTreeMap::new();
    for svc in docker.stack_services(stack).await? {
        let Some(full) = svc.spec.as_ref().and_then(|s| s.name.clone()) else {
            continue;
        };
        let name = full
            .strip_prefix(&format!("{stack}_"))
            .unwrap_or(&full)
            .to_string();
        let tasks = docker.service_tasks(&full).await?;
        out.insert(name.clone(), service_state(&name, &svc, &tasks));
    }
    Ok(out)
}

/// Waits until every service in `expected` has converged; the states at that moment. At the
/// deadline: an error naming each service that has not, with its newest task error.
pub async fn wait(
    docker: &Docker,
    stack: &str,
    expected: &[String],
    within: Duration,
) -> Result<Vec<ServiceState>> {
    let started = Instant::now();
    loop {
        let now = snapshot(docker, stack).await?;
        let pending: Vec<String> = expected
            .iter()
            .filter(|n| !now.get(*n).is_some_and(ServiceState::converged))
            .cloned()
            .collect();
        if pending.is_empty() {
            return Ok(expected
                .iter()
                .filter_map(|n| now.get(n).cloned())
                .collect());
        }
        if started.elapsed() >= within {
            let lines: Vec<String> = pending
                .iter()
                .map(|n| match now.get(n) {
                    None => format!("{n}: no such service in stack {stack}"),
                    Some(s) => format!(
                        "{n}: {}/{} {}{}",
                        s.ready,
                        s.desired,
                        if s.mode == Mode::Job {
                            "completed"
                        } else {
                            "running"
                        },
                        s.last_error
                            .as_deref()
                            .map(|e| format!(" (last task: {e})"))
                            .unwrap_or_default()
                    ),
                })
                .collect();
            bail!(
                UserError::new(format!(
                    "stack {stack} did not converge within {} s:\n  {}",
                    within.as_secs(),
                    lines.join("\n  ")
                ))
                .hint(format!(
                    "see `docker service ps --no-trunc {stack}_{0}` and `docker service logs {stack}_{0}`; `stackctl status --swarm` shows where it stands",
                    pending[0]
                ))
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One line per service: `name  mode  ready/desired  note`.
pub fn report(states: &[ServiceState]) -> String {
    let width = states.iter().map(|s| s.name.len()).max().unwrap_or(0);
    states
        .iter()
        .map(|s| {
            let (mode, what) = match s.mode {
                Mode::Replicated => ("replicated", "running"),
                Mode::Global => ("global", "running"),
                Mode::Job => ("job", "completed"),
            };
            let mut line = format!(
                "{:width$}  {mode:10}  {}/{} {what}",
                s.name, s.ready, s.desired
            );
            if let Some(e) = &s.last_error {
                line.push_str(&format!("  (last task: {e})"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecModeReplicatedJob,
        TaskStatus,
    };

    fn service(mode: ServiceSpecMode) -> Service {
        Service {
            spec: Some(ServiceSpec {
                mode: Some(mode),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn task(desired: TaskState, state: TaskState, err: Option<&str>) -> Task {
        Task {
            desired_state: Some(desired),
            status: Some(TaskStatus {
                state: Some(state),
                err: err.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn replicas_count_only_running_tasks_meant_to_run() {
        let svc = service(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(3) }),
            ..Default::default()
        });
        let tasks = [
            task(TaskState::RUNNING, TaskState::RUNNING, None),
            task(TaskState::RUNNING, TaskState::STARTING, None),
            task(TaskState::RUNNING, TaskState::RUNNING, None),
            task(TaskState::SHUTDOWN, TaskState::RUNNING, None),
        ];
        let s = service_state("runner", &svc, &tasks);
        assert_eq!((s.ready, s.desired, s.mode), (2, 3, Mode::Replicated));
        assert!(!s.converged());
        let mut tasks = tasks.to_vec();
        tasks[1] = task(TaskState::RUNNING, TaskState::RUNNING, None);
        assert!(service_state("runner", &svc, &tasks).converged());
    }

    #[test]
    fn a_job_converges_once_completed_and_a_global_service_on_every_scheduled_node() {
        let job = service(ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: Some(1),
                total_completions: None,
            }),
            ..Default::default()
        });
        let failed = [task(
            TaskState::COMPLETE,
            TaskState::FAILED,
            Some("task: non-zero exit (1)"),
        )];
        let s = service_state("migrate", &job, &failed);
        assert!(!s.converged());
        assert_eq!(s.mode, Mode::Job);
        let done = [task(TaskState::COMPLETE, TaskState::COMPLETE, None)];
        assert!(service_state("migrate", &job, &done).converged());

        let global = service(ServiceSpecMode {
            global: Some(Default::default()),
            ..Default::default()
        });
        let tasks = [
            task(TaskState::RUNNING, TaskState::RUNNING, None),
            task(TaskState::RUNNING, TaskState::PREPARING, None),
        ];
        let s = service_state("alloy", &global, &tasks);
        assert_eq!((s.ready, s.desired), (1, 2));
        assert!(report(&[s]).contains("alloy  global      1/2 running"));
    }
}
