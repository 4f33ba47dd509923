//! The one facade over bollard. Every Docker call goes through a method here, and every error is
//! a [`DockerError`] that says what was being attempted ("creating container stack-postgres-1")
//! and what kind of failure it met, so callers `match` on [`DockerErrorKind`] rather than
//! searching the engine's message text (which only `error::kind_of` reads).
//!
//! API version: bollard 0.21 defaults to API 1.53, but its URI builder joins the request path as
//! an absolute path, which drops the `/v1.53` prefix: requests go out unversioned and the engine
//! answers at its own default version (1.41 on Docker 20.10). We still call `negotiate_version`
//! on connect, so that if bollard starts sending the prefix, it sends one the engine accepts.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::anyhow;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, EndpointSettings,
    ImageInspect, NetworkConnectRequest, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, ListContainersOptions,
    ListNetworksOptions, ListVolumesOptions, LogsOptions, PushImageOptions, RemoveContainerOptions,
    RemoveVolumeOptions, StopContainerOptions, TagImageOptions, UploadToContainerOptions,
};
use futures_util::{Stream, StreamExt, TryStreamExt};

pub use self::error::{DockerError, DockerErrorKind};
use self::error::{Result, kind_of};
use crate::error::UserError;

mod error;
mod swarm;

pub use self::swarm::{LABEL_STACK, SwarmRole};

/// What a command run by [`Docker::exec_capture`] printed, and its exit code.
#[derive(Debug, Default)]
pub struct ExecOutput {
    pub code: Option<i64>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Clone)]
pub struct Docker {
    inner: bollard::Docker,
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    kind_of(e) == DockerErrorKind::NotFound
}

fn is_conflict(e: &bollard::errors::Error) -> bool {
    kind_of(e) == DockerErrorKind::Conflict
}

/// Where we look for the engine, for error messages.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .map(|h| format!("DOCKER_HOST={h}"))
        .unwrap_or_else(|| "the default socket unix:///var/run/docker.sock".into())
}

impl Docker {
    /// Connects (honouring DOCKER_HOST) and checks that the engine answers. An engine that does
    /// not answer here is a `UserError`, not a [`DockerError`]: it is meant for the person at the
    /// terminal, as one line plus the hint to start Docker (`DockerErrorKind::Unreachable` is
    /// for an engine lost after connecting).
    pub async fn connect() -> anyhow::Result<Docker> {
        let unreachable = |e: &dyn std::fmt::Display| {
            anyhow!(
                UserError::new(format!("cannot reach the Docker Engine at {}: {e}", docker_host()))
                    .hint("start Docker, or point DOCKER_HOST at a running engine (`docker info` should work)")
            )
        };
        // Not `connect_with_local_defaults`: it honours DOCKER_HOST only when it is `unix://` and
        // silently falls back to the default socket for `tcp://`. This one honours every scheme.
        let inner = bollard::Docker::connect_with_defaults().map_err(|e| unreachable(&e))?;
        let inner = tokio::time::timeout(Duration::from_secs(10), inner.negotiate_version())
            .await
            .map_err(|_| unreachable(&"no answer within 10 s"))?
            .map_err(|e| unreachable(&e))?;
        Ok(Docker { inner })
    }

    // ---- containers -------------------------------------------------------------------------

    /// Containers (running or not) carrying every `label=value` (or bare `label`) filter.
    pub async fn list_containers(&self, labels: &[String]) -> Result<Vec<ContainerSummary>> {
        let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
        self.inner
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| {
                DockerError::engine(
                    format!("listing containers with labels {}", labels.join(", ")),
                    "containers",
                    e,
                )
            })
    }

    pub async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInspectResponse>> {
        match self.inner.inspect_container(name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(DockerError::engine(
                format!("inspecting container {name}"),
                name,
                e,
            )),
        }
    }

    pub async fn create_container(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let opts = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let r = self
            .inner
            .create_container(Some(opts), body)
            .await
            .map_err(|e| DockerError::engine(format!("creating container {name}"), name, e))?;
        Ok(r.id)
    }

    pub async fn start_container(&self, name: &str) -> Result<()> {
        self.inner
            .start_container(name, None)
            .await
            .map_err(|e| DockerError::engine(format!("starting container {name}"), name, e))
    }

    /// Stops a container, giving it `timeout` before SIGKILL.
    pub async fn stop_container(&self, name: &str, timeout: Option<Duration>) -> Result<()> {
        let t = timeout.map(|t| t.as_secs() as i32);
        match self
            .inner
            .stop_container(name, Some(StopContainerOptions { t, signal: None }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(DockerError::engine(
                format!("stopping container {name}"),
                name,
                e,
            )),
        }
    }

    pub async fn remove_container(&self, name: &str) -> Result<()> {
        let opts = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        match self.inner.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 409: removal already in progress.
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(DockerError::engine(
                format!("removing container {name}"),
                name,
                e,
            )),
        }
    }

    /// Extracts a tar archive at `/` in the container (works before the container starts).
    pub async fn upload_tar(&self, name: &str, tar: Vec<u8>) -> Result<()> {
        let opts = UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        };
        self.inner
            .upload_to_container(name, Some(opts), bollard::body_full(tar.into()))
            .await
            .map_err(|e| {
                DockerError::engine(
                    format!("copying config files into container {name}"),
                    name,
                    e,
                )
            })
    }

    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        aliases: Vec<String>,
    ) -> Result<()> {
        let req = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(aliases),
                ..Default::default()
            }),
        };
        self.inner.connect_network(network, req).await.map_err(|e| {
            DockerError::engine(
                format!("connecting container {container} to network {network}"),
                network,
                e,
            )
        })
    }

    /// Waits for a container to exit and returns its exit code.
    pub async fn wait_container(&self, name: &str) -> Result<i64> {
        let mut s = self.inner.wait_container(name, None);
        match s.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(DockerError::engine(
                format!("waiting for container {name} to exit"),
                name,
                e,
            )),
            None => Err(DockerError::message(
                format!("waiting for container {name} to exit"),
                name,
                "the engine closed the stream",
            )),
        }
    }

    /// Runs a command in a running container, with `stdin` written to it (then closed) when
    /// given, and returns its exit code and output. Fails when it does not finish within
    /// `timeout`.
    pub async fn exec_capture(
        &self,
        name: &str,
        cmd: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        use tokio::io::AsyncWriteExt;
        let what = cmd.first().cloned().unwrap_or_default();
        let opts = CreateExecOptions::<String> {
            cmd: Some(cmd),
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self.inner.create_exec(name, opts).await.map_err(|e| {
            DockerError::engine(format!("creating an exec of {what} in {name}"), name, e)
        })?;
        let op = || format!("running {what} in {name}");
        let run = async {
            let engine = |e| DockerError::engine(op(), name, e);
            let io = |e| DockerError::other(op(), name, e);
            let mut out = ExecOutput::default();
            match self
                .inner
                .start_exec(&exec.id, None::<StartExecOptions>)
                .await
                .map_err(engine)?
            {
                StartExecResults::Attached {
                    mut output,
                    mut input,
                } => {
                    if let Some(bytes) = stdin {
                        input.write_all(&bytes).await.map_err(io)?;
                        input.flush().await.map_err(io)?;
                        input.shutdown().await.map_err(io)?;
                    }
                    while let Some(chunk) = output.next().await {
                        match chunk.map_err(engine)? {
                            LogOutput::StdErr { message } => out.stderr.extend_from_slice(&message),
                            other => out.stdout.extend_from_slice(&other.into_bytes()),
                        }
                    }
                }
                StartExecResults::Detached => {}
            }
            out.code = self
                .inner
                .inspect_exec(&exec.id)
                .await
                .map_err(engine)?
                .exit_code;
            Ok(out)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(DockerError::message(
                op(),
                name,
                format!("no answer within {}s", timeout.as_secs()),
            )),
        }
    }

    /// The container's log as a stream of (is_stderr, bytes) chunks.
    pub fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: &str,
    ) -> impl Stream<Item = Result<LogOutput>> + use<> {
        let opts = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        let n = name.to_string();
        self.inner.logs(name, Some(opts)).map(move |r| {
            r.map_err(|e| DockerError::engine(format!("reading the log of {n}"), &n, e))
        })
    }

    /// The last `n` log lines of a container, as text (empty on error: used in error reports).
    pub async fn log_tail(&self, name: &str, n: usize) -> String {
        let chunks: Vec<LogOutput> = self
            .logs(name, false, &n.to_string())
            .filter_map(|r| async { r.ok() })
            .collect()
            .await;
        chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.clone().into_bytes()).into_owned())
            .collect()
    }

    // ---- networks and volumes ---------------------------------------------------------------

    pub async fn network_exists(&self, name: &str) -> Result<bool> {
        match self.inner.inspect_network(name, None).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(DockerError::engine(
                format!("inspecting network {name}"),
                name,
                e,
            )),
        }
    }

    pub async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..Default::default()
        };
        match self.inner.create_network(req).await {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(DockerError::engine(
                format!("creating network {name}"),
                name,
                e,
            )),
        }
    }

    pub async fn list_networks(&self, label: &str) -> Result<Vec<String>> {
        let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
        let nets = self
            .inner
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| {
                DockerError::engine(
                    format!("listing networks with label {label}"),
                    "networks",
                    e,
                )
            })?;
        Ok(nets.into_iter().filter_map(|n| n.name).collect())
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        match self.inner.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(DockerError::engine(
                format!("removing network {name}"),
                name,
                e,
            )),
        }
    }

    pub async fn volume_exists(&self, name: &str) -> Result<bool> {
        match self.inner.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(DockerError::engine(
                format!("inspecting volume {name}"),
                name,
                e,
            )),
        }
    }

    /// The labels of volume `name`, or `None` when there is no such volume.
    pub async fn volume_labels(&self, name: &str) -> Result<Option<HashMap<String, String>>> {
        match self.inner.inspect_volume(name).await {
            Ok(v) => Ok(Some(v.labels)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(DockerError::engine(
                format!("inspecting volume {name}"),
                name,
                e,
            )),
        }
    }

    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        self.inner
            .create_volume(req)
            .await
            .map(|_| ())
            .map_err(|e| DockerError::engine(format!("creating volume {name}"), name, e))
    }

    pub async fn list_volumes(&self, label: &str) -> Result<Vec<String>> {
        let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
        let r = self
            .inner
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| {
                DockerError::engine(format!("listing volumes with label {label}"), "volumes", e)
            })?;
        Ok(r.volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        match self
            .inner
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(DockerError::engine(
                format!("removing volume {name}"),
                name,
                e,
            )),
        }
    }

    // ---- images -----------------------------------------------------------------------------

    pub async fn inspect_image(&self, image: &str) -> Result<Option<ImageInspect>> {
        match self.inner.inspect_image(image).await {
            Ok(i) => Ok(Some(i)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(DockerError::engine(
                format!("inspecting image {image}"),
                image,
                e,
            )),
        }
    }

    /// Pulls an image, with registry credentials when given (the engine reads no Docker config
    /// of its own).
    pub async fn pull_image(
        &self,
        image: &str,
        credentials: Option<bollard::auth::DockerCredentials>,
    ) -> Result<()> {
        let opts = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut s = self.inner.create_image(Some(opts), None, credentials);
        while let Some(item) = s.next().await {
            let info =
                item.map_err(|e| DockerError::engine(format!("pulling image {image}"), image, e))?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::message(
                    format!("pulling image {image}"),
                    image,
                    err,
                ));
            }
        }
        Ok(())
    }

    /// Tags `image` (a name or id) as `repo:tag`.
    pub async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let opts = TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        self.inner.tag_image(image, Some(opts)).await.map_err(|e| {
            DockerError::engine(format!("tagging image {image} as {repo}:{tag}"), image, e)
        })
    }

    /// Pushes `repo:tag`, passing each progress status to `on_status`. A failure reported inside
    /// the stream (unreachable registry, refused credentials) is an error with the engine's text.
    pub async fn push_image(
        &self,
        repo: &str,
        tag: &str,
        credentials: Option<bollard::auth::DockerCredentials>,
        mut on_status: impl FnMut(&str),
    ) -> Result<()> {
        let opts = PushImageOptions {
            tag: Some(tag.to_string()),
            platform: None,
        };
        let mut s = self.inner.push_image(repo, Some(opts), credentials);
        while let Some(item) = s.next().await {
            let info = item
                .map_err(|e| DockerError::engine(format!("pushing image {repo}:{tag}"), repo, e))?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::message(
                    format!("pushing image {repo}:{tag}"),
                    repo,
                    err,
                ));
            }
            if let Some(status) = info.status {
                on_status(&status);
            }
        }
        Ok(())
    }

    /// Builds an image with the classic builder, passing each output line to `on_line`.
    pub async fn build_image(
        &self,
        tag: &str,
        opts: BuildImageOptions,
        context_tar: Vec<u8>,
        mut on_line: impl FnMut(&str),
    ) -> Result<()> {
        let mut s =
            self.inner
                .build_image(opts, None, Some(bollard::body_full(context_tar.into())));
        while let Some(item) = s
            .try_next()
            .await
            .map_err(|e| DockerError::engine(format!("building image {tag}"), tag, e))
            .transpose()
        {
            let info = item?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::message(
                    format!("building image {tag}"),
                    tag,
                    err,
                ));
            }
            if let Some(text) = info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    on_line(line);
                }
            }
        }
        Ok(())
    }
}
