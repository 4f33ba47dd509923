//! The registry a test publishes to: Debian's `docker-registry` on a free loopback port, with
//! optional htpasswd credentials, killed on drop; and a plain HTTP GET to read it back.

use std::io::{Read, Write};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::{free_port, require_docker};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry; killed on drop.
pub(super) struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `user`, it asks for that user and password (htpasswd, bcrypt).
    pub(super) fn start(user: Option<(&str, &str)>) -> Registry {
        require_docker();
        assert!(
            std::path::Path::new(REGISTRY_BIN).is_file(),
            "this test needs Debian's docker-registry package ({REGISTRY_BIN}): `apt-get install -y docker-registry` (scripts/test.sh installs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("stackctl-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: stackctl-test\n",
            dir.path().join("data").display()
        );
        if let Some((u, p)) = user {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("running htpasswd (apache2-utils; scripts/test.sh installs it)");
            assert!(out.status.success(), "htpasswd: {out:?}");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: stackctl-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let reg = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        // Any answer will do (200, or 401 when it asks for credentials).
        while http(reg.port, "/v2/", None).is_none() {
            assert!(
                Instant::now() < deadline,
                "the registry did not answer on 127.0.0.1:{port} within 20s; its log:\n{}",
                std::fs::read_to_string(reg.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub(super) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The config digest `ns/name:tag` names in this (anonymous) registry, if the tag exists.
    pub(super) fn config_digest(&self, repo: &str, tag: &str) -> Option<String> {
        let body = http_get(
            self.port,
            &format!("/v2/{repo}/manifests/{tag}"),
            Some("application/vnd.docker.distribution.manifest.v2+json"),
        )?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["config"]["digest"].as_str().map(str::to_string)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a 200 answer to a plain GET on loopback, else `None`.
pub(super) fn http_get(port: u16, path: &str, accept: Option<&str>) -> Option<String> {
    http(port, path, accept).and_then(|(status, body)| (status == 200).then_some(body))
}

/// A plain HTTP/1.0 GET on loopback: the status and body, or `None` when nothing answers.
pub(super) fn http(port: u16, path: &str, accept: Option<&str>) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{accept}\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}
