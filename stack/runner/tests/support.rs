//! Test helpers: a real PostgreSQL 17 container (our image, started by `testkit`) and runner
//! processes, both removed or killed by Drop guards. Docker is required: no Docker, the test fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL 17 server (testkit's) with the runner schema applied; removed on drop.
pub struct Pg {
    _server: testkit::Postgres,
    pub url: String,
}

impl Pg {
    /// Start PostgreSQL 17, wait (with a deadline) until it takes connections, apply the
    /// runner schema.
    pub async fn start() -> Pg {
        let server = testkit::Postgres::start_async(&testkit::Options {
            name_prefix: "runner-test",
            superuser: "postgres",
            password: "runner-test",
            database: None,
            network_alias: None,
            docker_args: &[],
            if_missing: testkit::IfMissing::Fail,
        })
        .await;
        let url = format!(
            "host=127.0.0.1 port={} user=postgres password=runner-test dbname=postgres",
            server.port
        );
        let mut c = connect(&url).await;
        runner::sql::apply(&mut c)
            .await
            .expect("applying the runner schema");
        Pg {
            _server: server,
            url,
        }
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
        metrics: Default::default(),
    }
}

/// A registry of the workers deployed in `pool`'s database, loaded (routes on
/// `*.workers.test`, a 10 s wall time, the services of [`services`] with no fetch allowed).
pub async fn loaded_registry(
    pool: &deadpool_postgres::Pool,
) -> std::sync::Arc<runner::registry::Registry> {
    let registry = runner::registry::Registry::new(
        Some("workers.test".into()),
        runner::registry::Limits {
            wall: Duration::from_secs(10),
            ..Default::default()
        },
        None,
        Some(services(pool, Vec::new())),
    );
    registry
        .reload_all(&**pool.get().await.expect("conn"))
        .await
        .expect("load");
    registry
}
