//! Test helpers: a real PostgreSQL 17 container (our image) and runner processes, both
//! removed or killed by Drop guards. Docker is required: no Docker, the test fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "stackctl/postgres:17";

pub struct Pg {
    name: String,
    pub url: String,
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running docker {args:?} failed (is Docker installed?): {e}"));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Pg {
    /// Start PostgreSQL 17, wait (with a deadline) until it takes TCP connections, apply the
    /// runner schema.
    pub async fn start() -> Pg {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("runner-test-{}-{nanos}", std::process::id());
        let have = Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("running docker failed (is Docker installed?): {e}"));
        assert!(
            have.success(),
            "image {IMAGE} is missing: build it with \
             `docker build --network host -t {IMAGE} stack/postgres` (base debian:trixie-slim from scripts/base-image.sh)"
        );
        docker(&[
            "run",
            "-d",
            "--rm",
            "--name",
            &name,
            "-p",
            "127.0.0.1::5432",
            "-e",
            "POSTGRES_PASSWORD=runner-test",
            IMAGE,
        ]);
        let mut pg = Pg {
            name: name.clone(),
            url: String::new(),
        };
        let port = docker(&["port", &name, "5432/tcp"]);
        let port = port
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .unwrap_or_else(|| panic!("no port mapping for {name}: {port:?}"))
            .to_string();
        let url = format!(
            "host=127.0.0.1 port={port} user=postgres password=runner-test dbname=postgres"
        );
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok((c, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                tokio::spawn(conn);
                if c.simple_query("SELECT 1").await.is_ok() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL in {name} not ready within 90 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut c = connect(&url).await;
        runner::sql::apply(&mut c)
            .await
            .expect("applying the runner schema");
        pg.url = url;
        pg
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test database");
    tokio::spawn(conn);
    c
}

/// A `runner` process, killed on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: std::path::PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let log =
            std::env::temp_dir().join(format!("runner-test-{}-{name}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("creating the process log");
        let err = file.try_clone().expect("cloning the log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("starting the runner binary");
        Proc {
            child,
            name: name.to_string(),
            log,
        }
    }

    /// The address `runner serve` logged it listens on (waits up to `within`).
    pub fn listen_addr(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && v["msg"] == "runner serving"
                    && let Some(a) = v["addr"].as_str()
                {
                    return a.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log its address: {text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait (with a deadline) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `f` until it returns Some, or panic with `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run `runner healthcheck` against `addr`; true when it exits 0.
pub fn healthcheck(addr: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("healthcheck")
        .env("RUNNER_LISTEN", addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// What a test's workers may reach: `pool` for `env.QUEUE`, `fetch` to the loopback addresses in
/// `allow` only (5 s, 1 MiB), no `env.DB`.
pub fn services(
    pool: &deadpool_postgres::Pool,
    allow: Vec<std::net::IpAddr>,
) -> runner::js::Services {
    runner::js::Services {
        pool: pool.clone(),
        handle: tokio::runtime::Handle::current(),
        fetch: runner::fetch::FetchPolicy {
            allow,
            timeout: Duration::from_secs(5),
            max_response: 1 << 20,
            tls: None,
        },
        gateway: None,
    }
}
