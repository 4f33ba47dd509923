//! Readiness as data: what a service's containers must reach before the service counts as up
//! ([`WaitFor`]), by when ([`Deadline`]), and the polling that finds out. Every wait here ends
//! at its deadline; none sleeps for a guess.
//!
//! Health is polled every 200 ms. Besides reading Docker's health status, a wait may exec the
//! service's own healthcheck test in the container on each tick while Docker still says
//! `starting` ([`Probe`]): Docker runs the first check only one `interval` after start, so
//! waiting for it alone would add up to an interval per service on the critical path. The
//! caller (`apply`) decides whose word it takes; this module only reports what it saw, as a
//! [`NotHealthy`] that the caller turns into a message with the container's last log lines.

use std::time::Duration;

use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};
use tokio::time::Instant;

use super::docker::{Docker, DockerError};
use crate::compose::{Restart, Service};

/// How often health is polled.
const TICK: Duration = Duration::from_millis(200);

/// What a service's containers must reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    /// Running: nothing more to wait for (no healthcheck, not a job).
    Started,
    /// Healthy (the service has a healthcheck that runs a command).
    Healthy(Probe),
    /// Exited with code 0 (a job: `restart: "no"` and no healthcheck, like `migrate`).
    ExitedZero,
}

impl WaitFor {
    /// What `svc` must reach before its dependents may rely on it.
    pub fn of(svc: &Service) -> WaitFor {
        let hc = svc.healthcheck.as_ref();
        match hc.and_then(|h| h.exec_command()) {
            Some(cmd) => WaitFor::Healthy(Probe {
                cmd,
                // Each probe is bounded by the healthcheck's own timeout (Docker's default 30 s),
                // and by 10 s, so a slow probe cannot hold the poll back for long.
                timeout: hc
                    .and_then(|h| h.timeout)
                    .unwrap_or(Duration::from_secs(30))
                    .min(Duration::from_secs(10)),
            }),
            None if svc.restart == Some(Restart::No) => WaitFor::ExitedZero,
            None => WaitFor::Started,
        }
    }
}

/// The service's healthcheck test, as we exec it ourselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub cmd: Vec<String>,
    /// How long one run of it may take.
    pub timeout: Duration,
}

/// When a wait gives up, and the limit it was given (for the message that says so).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    /// `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The limit in whole seconds, as messages show it.
    pub fn secs(&self) -> u64 {
        self.limit.as_secs()
    }
}

/// Why a container did not become healthy. Displays as the end of "container NAME ...".
#[derive(Debug)]
pub enum NotHealthy {
    /// It exited first (or is restarting after exiting, under a restart policy).
    Exited { code: i64, restarting: bool },
    /// Docker's verdict: its healthcheck kept failing.
    Unhealthy,
    /// The container disappeared.
    Gone,
    /// The deadline passed; `probed`: whether our own probe was tried too.
    TimedOut { probed: bool, secs: u64 },
    /// A Docker call failed.
    Docker(anyhow::Error),
}

impl From<DockerError> for NotHealthy {
    fn from(e: DockerError) -> NotHealthy {
        NotHealthy::Docker(e.into())
    }
}

impl std::fmt::Display for NotHealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotHealthy::Exited { code, restarting } => {
                let restarting = if *restarting {
                    " and is restarting,"
                } else {
                    ""
                };
                write!(
                    f,
                    "exited with code {code}{restarting} before it became healthy"
                )
            }
            NotHealthy::Unhealthy => f.write_str("is unhealthy (its healthcheck kept failing)"),
            NotHealthy::Gone => f.write_str("disappeared while waiting for it to become healthy"),
            NotHealthy::TimedOut { probed: true, secs } => {
                write!(f, "did not become healthy within {secs}s")
            }
            NotHealthy::TimedOut {
                probed: false,
                secs,
            } => write!(
                f,
                "passed its healthcheck, but Docker had not recorded it healthy within {secs}s \
                 (Docker checks every healthcheck `interval`; raise --wait-timeout or shorten it)"
            ),
            NotHealthy::Docker(e) => write!(f, "{e:#}"),
        }
    }
}

/// Waits until container `name` is healthy: by Docker's health status, or, with `probe`, also by
/// a zero exit of the probe run by us. Fails at once when the container exits, crash-loops or
/// is declared unhealthy, rather than at the deadline.
pub async fn healthy(
    docker: &Docker,
    name: &str,
    probe: Option<&Probe>,
    deadline: Deadline,
) -> Result<(), NotHealthy> {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(c) = docker.inspect_container(name).await? else {
            return Err(NotHealthy::Gone);
        };
        let state = c.state.unwrap_or_default();
        match state.status {
            Some(
                status @ (ContainerStateStatusEnum::EXITED
                | ContainerStateStatusEnum::DEAD
                | ContainerStateStatusEnum::RESTARTING),
            ) => {
                return Err(NotHealthy::Exited {
                    code: state.exit_code.unwrap_or(-1),
                    restarting: status == ContainerStateStatusEnum::RESTARTING,
                });
            }
            Some(ContainerStateStatusEnum::RUNNING) => {
                match state.health.and_then(|h| h.status) {
                    Some(HealthStatusEnum::HEALTHY) => return Ok(()),
                    Some(HealthStatusEnum::UNHEALTHY) => return Err(NotHealthy::Unhealthy),
                    _ => {}
                }
                if let Some(p) = probe
                    && let Ok(out) = docker
                        .exec_capture(name, p.cmd.clone(), None, p.timeout)
                        .await
                    && out.code == Some(0)
                {
                    return Ok(());
                }
            }
            _ => {}
        }
        if deadline.passed() {
            return Err(NotHealthy::TimedOut {
                probed: probe.is_some(),
                secs: deadline.secs(),
            });
        }
    }
}

/// Waits until container `name` exits; returns its exit code, or `None` when the deadline
/// passed first.
pub async fn exit(
    docker: &Docker,
    name: &str,
    deadline: Deadline,
) -> Result<Option<i64>, DockerError> {
    match tokio::time::timeout_at(deadline.at(), docker.wait_container(name)).await {
        Ok(code) => code.map(Some),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::tests::project_from;

    fn service(yaml: &str) -> Service {
        let (_dir, p) = project_from(&format!("services:\n  s:\n    image: x\n{yaml}"));
        p.file.services["s"].clone()
    }

    #[test]
    fn readiness_follows_the_service_definition() {
        assert_eq!(WaitFor::of(&service("")), WaitFor::Started);
        assert_eq!(
            WaitFor::of(&service("    restart: \"no\"\n")),
            WaitFor::ExitedZero
        );
        assert_eq!(
            WaitFor::of(&service(
                "    restart: \"no\"\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      timeout: 3s\n"
            )),
            WaitFor::Healthy(Probe {
                cmd: vec!["true".into()],
                timeout: Duration::from_secs(3)
            })
        );
        // A probe never runs longer than 10 s, whatever the healthcheck's timeout.
        assert_eq!(
            WaitFor::of(&service(
                "    healthcheck:\n      test: [\"CMD-SHELL\", \"pg_isready\"]\n"
            )),
            WaitFor::Healthy(Probe {
                cmd: vec!["/bin/sh".into(), "-c".into(), "pg_isready".into()],
                timeout: Duration::from_secs(10)
            })
        );
        // `NONE` disables the image's healthcheck: a job again.
        assert_eq!(
            WaitFor::of(&service(
                "    restart: \"no\"\n    healthcheck:\n      test: [\"NONE\"]\n"
            )),
            WaitFor::ExitedZero
        );
    }

    #[test]
    fn why_not_healthy_reads_as_before() {
        let say = |n: NotHealthy| n.to_string();
        assert_eq!(
            say(NotHealthy::Exited {
                code: 1,
                restarting: true
            }),
            "exited with code 1 and is restarting, before it became healthy"
        );
        assert_eq!(
            say(NotHealthy::Exited {
                code: 2,
                restarting: false
            }),
            "exited with code 2 before it became healthy"
        );
        assert_eq!(
            say(NotHealthy::TimedOut {
                probed: true,
                secs: 60
            }),
            "did not become healthy within 60s"
        );
        assert!(
            say(NotHealthy::TimedOut {
                probed: false,
                secs: 60
            })
            .starts_with(
                "passed its healthcheck, but Docker had not recorded it healthy within 60s"
            )
        );
    }

    #[tokio::test]
    async fn a_deadline_passes_after_its_limit() {
        let d = Deadline::after(Duration::from_millis(20));
        assert!(!d.passed());
        assert_eq!(d.secs(), 0);
        tokio::time::sleep_until(d.at()).await;
        assert!(d.passed());
    }
}
