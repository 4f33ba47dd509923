//! The engine against the real Docker Engine: small Compose projects on `debian:trixie-slim`
//! (made by scripts/base-image.sh; nothing can be pulled here), each under a unique project name
//! and always taken down (with its volumes) by a guard, even when the test fails.
//!
//! This module holds that guard ([`Proj`], which other areas use too) and the small project most
//! scenarios start from; one file per topic.

mod converge;
pub(crate) mod core_stack;
mod failures;
mod logs;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use crate::support::{Stackctl, require_docker};

/// A stack directory with a unique project name; `down --volumes` on drop.
pub(crate) struct Proj {
    pub(crate) s: Stackctl,
    pub(crate) name: String,
}

impl Proj {
    pub(crate) fn new(tag: &str) -> Proj {
        require_docker();
        let suffix: u32 = rand_suffix();
        let name = format!("t{tag}{suffix:08x}");
        let s = Stackctl::new();
        s.write("stack.toml", &format!("[project]\nname = \"{name}\"\n"));
        Proj { s, name }
    }

    /// Writes `compose.yml` with `NAME` replaced by the project name.
    fn compose(&self, text: &str) {
        self.s
            .write("compose.yml", &text.replace("NAME", &self.name));
    }

    fn up(&self, extra: &[&str]) -> crate::support::Run {
        let mut args = vec!["up", "-f", "compose.yml"];
        args.extend_from_slice(extra);
        let f = self.s.file("compose.yml");
        let mut r = self.s.cmd(args);
        r.cmd.current_dir(f.parent().unwrap());
        r
    }

    /// service-number -> container id of the project's service containers.
    pub(crate) fn containers(&self) -> BTreeMap<String, String> {
        let out = Command::new("docker")
            .args(["ps", "-a", "--filter", &format!("label=com.docker.compose.project={}", self.name)])
            .args(["--filter", "label=com.docker.compose.oneoff=False", "--format"])
            .arg("{{.Label \"com.docker.compose.service\"}}-{{.Label \"com.docker.compose.container-number\"}} {{.ID}}")
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect()
    }
}

impl Drop for Proj {
    fn drop(&mut self) {
        let _ = self
            .s
            .cmd(["down", "--volumes", "--include-backups", "--yes"])
            .run();
    }
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    h.finish() as u32
}

const SMALL: &str = r#"
name: NAME
services:
  db:
    image: debian:trixie-slim
    command: ["sh", "-c", "echo db says hello; sleep infinity"]
    stop_grace_period: 1s
    environment:
      GREETING: ${GREETING:-hi}
    healthcheck:
      test: ["CMD", "test", "-f", "/etc/app/c.txt"]
      interval: 1s
    configs:
      - source: c
        target: /etc/app/c.txt
        mode: 0400
    volumes: ["data:/data"]
    ports: ["127.0.0.1::8787"]
    networks:
      net:
        aliases: [database]
    labels:
      dev.stackctl.group: core
  job:
    image: debian:trixie-slim
    command: ["sh", "-c", "getent hosts database && echo job done"]
    restart: "no"
    depends_on:
      db: {condition: service_healthy}
    networks: [net]
    labels:
      dev.stackctl.group: core
  web:
    image: debian:trixie-slim
    command: ["sh", "-c", "echo web up; sleep infinity"]
    stop_grace_period: 1s
    deploy: {replicas: 2}
    depends_on:
      job: {condition: service_completed_successfully}
    networks: [net]
    labels:
      dev.stackctl.group: apps
networks:
  net: {}
volumes:
  data: {}
configs:
  c:
    file: ./conf/c.txt
"#;
