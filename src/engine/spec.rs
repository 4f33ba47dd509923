//! The Compose → Docker translation: a service of the interpolated Compose file becomes the
//! create body of one container, plus the config hash that says when to recreate it and the tar
//! of its config files. Pure functions of the project (they read the config files, never
//! Docker), so they are unit-tested here without an engine.
//!
//! The hash is sha256 of the interpolated service as JSON plus the contents of its config files
//! (and, for a job, of its bind mounts); it is not Compose's Go hash (see `engine`'s comment).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use sha2::{Digest, Sha256};

use super::labels::{Replica, container_labels, network_name, volume_name};
use crate::compose::{Project, Restart, Service, VolumeSource};

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
    svc: &Service,
    replica: &Replica,
) -> (ContainerCreateBody, Vec<(String, Vec<String>)>) {
    let p = &project.name;
    let service = replica.service;
    let labels = container_labels(project, svc, replica);
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

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::engine::labels::{LABEL_HASH, LABEL_NUMBER, LABEL_ONEOFF, LABEL_PROJECT};

    const FILE: &str = r#"
name: demo
services:
  db:
    image: postgres:17
    command: ["postgres", "-c", "fsync=off"]
    environment:
      PASSWORD: secret
      STACKCTL_SPEC_TEST_UNSET_VARIABLE:
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -q"]
      interval: 2s
      timeout: 3s
      retries: 5
    configs:
      - source: conf
        target: /etc/app/app.conf
        mode: 0400
        uid: "70"
    volumes: ["data:/var/lib/data", "./seed:/seed:ro"]
    ports: ["127.0.0.1:5432:5432", "8080"]
    expose: ["9187"]
    networks:
      back:
        aliases: [database]
      front: {}
    restart: unless-stopped
    stop_grace_period: 5s
    labels:
      dev.stackctl.group: core
  job:
    image: tool:1
    restart: "no"
    depends_on:
      db: {condition: service_healthy}
    volumes: ["./seed:/seed:ro"]
  web:
    image: web:1
    volumes: ["./seed:/seed:ro"]
networks:
  back: {}
  front: {}
volumes:
  data: {}
configs:
  conf:
    file: ./app.conf
"#;

    /// A project directory with the Compose file, its config file and a bind-mounted `seed/`.
    fn project() -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "app.conf", "listen = 1\n");
        write(dir.path(), "seed/V1__init.sql", "create table t ();\n");
        write(dir.path(), "docker-compose.yml", FILE);
        let p = load(dir.path());
        (dir, p)
    }

    /// The project of Compose file `text`, in a directory of its own.
    pub(crate) fn project_from(text: &str) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "docker-compose.yml", text);
        let p = load(dir.path());
        (dir, p)
    }

    fn load(dir: &Path) -> Project {
        Project::load(&dir.join("docker-compose.yml"), &BTreeMap::new(), "unused").unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn replica(service: &str, oneoff: bool) -> Replica<'_> {
        Replica {
            service,
            number: 2,
            config_hash: "h4sh",
            image_id: "sha256:abc",
            oneoff,
        }
    }

    #[test]
    fn container_body_translates_the_service() {
        let (_dir, p) = project();
        let svc = &p.file.services["db"];
        let (body, extra) = container_body(&p, svc, &replica("db", false));

        assert_eq!(body.image.as_deref(), Some("postgres:17"));
        assert_eq!(
            body.cmd,
            Some(vec!["postgres".into(), "-c".into(), "fsync=off".into()])
        );
        // A variable without a value comes from our environment, and is left out when unset.
        assert_eq!(body.env, Some(vec!["PASSWORD=secret".to_string()]));
        assert_eq!(body.stop_timeout, Some(5));

        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_PROJECT], "demo");
        assert_eq!(labels["com.docker.compose.service"], "db");
        assert_eq!(labels[LABEL_NUMBER], "2");
        assert_eq!(labels[LABEL_ONEOFF], "False");
        assert_eq!(labels[LABEL_HASH], "h4sh");
        assert_eq!(labels["com.docker.compose.image"], "sha256:abc");
        assert_eq!(labels["dev.stackctl.group"], "core");
        assert_eq!(
            labels["com.docker.compose.project.working_dir"],
            p.working_dir.display().to_string()
        );

        let hc = body.healthcheck.as_ref().unwrap();
        assert_eq!(
            hc.test,
            Some(vec!["CMD-SHELL".to_string(), "pg_isready -q".to_string()])
        );
        assert_eq!(hc.interval, Some(2_000_000_000));
        assert_eq!(hc.timeout, Some(3_000_000_000));
        assert_eq!(hc.retries, Some(5));
        assert_eq!(hc.start_period, None);

        let host = body.host_config.as_ref().unwrap();
        let seed = p.host_path("./seed").display().to_string();
        assert_eq!(
            host.binds,
            Some(vec![
                "demo_data:/var/lib/data:rw".to_string(),
                format!("{seed}:/seed:ro")
            ])
        );
        assert_eq!(
            host.restart_policy.as_ref().unwrap().name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        let ports = host.port_bindings.as_ref().unwrap();
        let fixed = ports["5432/tcp"].as_ref().unwrap();
        assert_eq!(fixed[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(fixed[0].host_port.as_deref(), Some("5432"));
        // No host port: Docker picks one.
        assert_eq!(
            ports["8080/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("")
        );
        let mut exposed = body.exposed_ports.clone().unwrap();
        exposed.sort();
        assert_eq!(exposed, vec!["5432/tcp", "8080/tcp", "9187/tcp"]);

        // The first network at create, with the service name as an alias; the rest after.
        assert_eq!(host.network_mode.as_deref(), Some("demo_back"));
        let endpoints = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.as_ref())
            .unwrap();
        assert_eq!(
            endpoints["demo_back"].aliases,
            Some(vec!["db".to_string(), "database".to_string()])
        );
        assert_eq!(
            extra,
            vec![("demo_front".to_string(), vec!["db".to_string()])]
        );
    }

    #[test]
    fn container_body_defaults_and_oneoff() {
        let (_dir, p) = project();
        let svc = &p.file.services["job"];
        let (body, extra) = container_body(&p, svc, &replica("job", true));
        assert_eq!(body.cmd, None);
        assert_eq!(body.healthcheck, None);
        assert_eq!(body.exposed_ports, None);
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_ONEOFF], "True");
        assert_eq!(
            labels["com.docker.compose.depends_on"],
            "db:service_healthy:false"
        );
        let host = body.host_config.as_ref().unwrap();
        assert_eq!(
            host.restart_policy.as_ref().unwrap().name,
            Some(RestartPolicyNameEnum::NO)
        );
        // Compose's implicit `default` network.
        assert_eq!(host.network_mode.as_deref(), Some("demo_default"));
        assert!(extra.is_empty());
        // No restart policy written: Docker's default applies.
        let (body, _) = container_body(&p, &p.file.services["web"], &replica("web", false));
        assert_eq!(body.host_config.unwrap().restart_policy, None);
    }

    #[test]
    fn jobs_and_networks() {
        let (_dir, p) = project();
        assert!(is_job(&p.file.services["job"]));
        assert!(!is_job(&p.file.services["db"]));
        assert!(!is_job(&p.file.services["web"]));
        assert_eq!(
            service_networks(&p.file.services["web"]),
            vec![("default".to_string(), Vec::new())]
        );
        assert_eq!(
            service_networks(&p.file.services["db"]),
            vec![
                ("back".to_string(), vec!["database".to_string()]),
                ("front".to_string(), Vec::new())
            ]
        );
    }

    #[test]
    fn config_hash_follows_config_files_and_a_jobs_bind_mounts() {
        let (dir, p) = project();
        let hash = |p: &Project, s: &str| config_hash(p, &p.file.services[s]).unwrap();
        let (db, job, web) = (hash(&p, "db"), hash(&p, "job"), hash(&p, "web"));
        assert_eq!(db.len(), 64);
        assert_eq!(
            db,
            hash(&load(dir.path()), "db"),
            "stable for the same input"
        );

        write(dir.path(), "app.conf", "listen = 2\n");
        let p = load(dir.path());
        assert_ne!(hash(&p, "db"), db, "a config file changed");
        assert_eq!(hash(&p, "job"), job);

        write(dir.path(), "seed/V2__more.sql", "create table u ();\n");
        let p = load(dir.path());
        assert_ne!(hash(&p, "job"), job, "a job's bind mount changed");
        assert_eq!(
            hash(&p, "web"),
            web,
            "a long-running service's bind mount is not hashed"
        );

        write(
            dir.path(),
            "docker-compose.yml",
            &FILE.replace("image: web:1", "image: web:2"),
        );
        assert_ne!(
            hash(&load(dir.path()), "web"),
            web,
            "the definition changed"
        );
    }

    #[test]
    fn config_tar_holds_each_config_at_its_target() {
        let (_dir, p) = project();
        assert!(config_tar(&p, &p.file.services["web"]).unwrap().is_none());
        let tar = config_tar(&p, &p.file.services["db"]).unwrap().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32, u64, u64, String)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    text,
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![(
                "etc/app/app.conf".to_string(),
                0o400,
                70,
                0,
                "listen = 1\n".to_string()
            )]
        );
    }
}
