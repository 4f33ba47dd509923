//! A small fluent helper for running `stackctl` in a temporary stack directory, in the style of
//! just's `tests/test.rs`: `Stackctl::new().args(["init"]).run().success()`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The stackctl binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stackctl"))
}

/// A temporary stack directory and a way to run stackctl in it.
pub struct Stackctl {
    pub dir: tempfile::TempDir,
}

impl Default for Stackctl {
    fn default() -> Self {
        Self::new()
    }
}

impl Stackctl {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("stackctl-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.file(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.file(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Starts a command: `stackctl --dir <tmp> ARGS...`.
    pub fn cmd<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(bin());
        c.arg("--dir").arg(self.path()).args(args);
        Run { cmd: c }
    }
}

/// A command about to run.
pub struct Run {
    pub cmd: Command,
}

impl Run {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn run(mut self) -> Done {
        let out = self.cmd.output().expect("running stackctl");
        Done { out }
    }
}

/// A finished command, with assertions that print its output when they fail.
pub struct Done {
    pub out: Output,
}

impl Done {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn show(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.out.status.code(),
            self.stdout(),
            self.stderr()
        )
    }

    pub fn success(self) -> Self {
        assert!(
            self.out.status.success(),
            "expected success\n{}",
            self.show()
        );
        self
    }

    pub fn failure(self) -> Self {
        assert!(
            !self.out.status.success(),
            "expected failure\n{}",
            self.show()
        );
        self
    }

    pub fn stdout_contains(self, s: &str) -> Self {
        assert!(
            self.stdout().contains(s),
            "stdout lacks {s:?}\n{}",
            self.show()
        );
        self
    }

    pub fn stderr_contains(self, s: &str) -> Self {
        assert!(
            self.stderr().contains(s),
            "stderr lacks {s:?}\n{}",
            self.show()
        );
        self
    }
}

/// Fails the test loudly when the Docker Engine cannot be reached: tests that need Docker never
/// pass by skipping.
pub fn require_docker() {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs a running Docker Engine (`docker info` failed); see README, section Tests"
    );
}

/// `docker compose` v2 (installed by scripts/compose-v2.sh), or panics with how to get it.
pub fn compose_v2() -> Command {
    let ok = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(" 2."))
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs Docker Compose v2 as `docker compose`: run scripts/compose-v2.sh"
    );
    let mut c = Command::new("docker");
    c.arg("compose");
    c
}

/// Mode bits of a file.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The tag of our PostgreSQL image, as stack.toml's default names it.
pub const POSTGRES_IMAGE: &str = "stackctl/postgres:17";

/// Makes sure our PostgreSQL 17 image exists and returns its tag. When it is missing it is built
/// from `stack/postgres` on the imported base `debian:trixie-slim` (see README, section Tests:
/// `debootstrap` + `docker import` make the base; host networking lets apt reach Debian's mirror).
/// Built once per test run, whichever test asks first.
pub fn postgres_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        require_docker();
        let exists = |tag: &str| {
            Command::new("docker")
                .args(["image", "inspect", tag])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if exists(POSTGRES_IMAGE) {
            return;
        }
        assert!(
            exists("debian:trixie-slim"),
            "the base image debian:trixie-slim is missing; see README, section Tests"
        );
        let ctx = Path::new(env!("CARGO_MANIFEST_DIR")).join("stack/postgres");
        let out = Command::new("docker")
            .args([
                "build",
                "--network",
                "host",
                "--build-arg",
                "BASE=debian:trixie-slim",
                "-t",
                POSTGRES_IMAGE,
            ])
            .arg(&ctx)
            .output()
            .expect("running docker build");
        assert!(
            out.status.success(),
            "building {POSTGRES_IMAGE} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    POSTGRES_IMAGE
}

/// A throw-away PostgreSQL 17 server in a container of our image, removed when dropped.
pub struct Postgres {
    pub name: String,
    pub port: u16,
    pub password: String,
    pub database: String,
}

impl Postgres {
    /// Starts a server (database `app`, superuser `postgres`) on a loopback port and waits, with a
    /// deadline, until it accepts connections.
    pub fn start() -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let image = postgres_image();
        let name = format!(
            "stackctl-test-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let password = format!("pw{}", std::process::id());
        let out = Command::new("docker")
            .args(["run", "-d", "--rm", "--name", &name, "-e"])
            .arg(format!("POSTGRES_PASSWORD={password}"))
            .args(["-e", "POSTGRES_DB=app", "-p", "127.0.0.1::5432", image])
            .output()
            .expect("docker run");
        assert!(
            out.status.success(),
            "docker run {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // From here on the guard removes the container, even if waiting fails.
        let mut pg = Self {
            name,
            port: 0,
            password,
            database: "app".into(),
        };
        let out = Command::new("docker")
            .args(["port", &pg.name, "5432/tcp"])
            .output()
            .expect("docker port");
        let text = String::from_utf8_lossy(&out.stdout);
        pg.port = text
            .lines()
            .find_map(|l| l.rsplit_once(':').and_then(|(_, p)| p.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no published port for {}: {text}", pg.name));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            match Db::connect(&pg.url()) {
                Ok(db) if db.query("SELECT 1").is_ok() => break,
                Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                    // Poll fast; the deadline bounds the wait.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Ok(_) | Err(_) => {
                    let logs = Command::new("docker")
                        .args(["logs", "--tail", "30", &pg.name])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
                    panic!(
                        "PostgreSQL in {} did not accept connections within 90s; logs:\n{}",
                        pg.name,
                        logs.unwrap_or_default()
                    );
                }
            }
        }
        pg
    }

    /// The superuser's URL.
    pub fn url(&self) -> String {
        self.url_as("postgres", &self.password)
    }

    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    /// A superuser connection.
    pub fn db(&self) -> Db {
        Db::connect(&self.url()).unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}

/// A blocking PostgreSQL client for assertions (tokio-postgres on its own small runtime).
pub struct Db {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Db {
    pub fn connect(url: &str) -> Result<Self, tokio_postgres::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        Ok(Self { rt, client })
    }

    /// Runs one or more statements (simple protocol).
    pub fn batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.rt.block_on(self.client.batch_execute(sql))
    }

    pub fn query(&self, sql: &str) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        self.rt.block_on(self.client.query(sql, &[]))
    }

    /// The first column of every row, as text (the query must select text).
    pub fn strings(&self, sql: &str) -> Vec<String> {
        self.query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    }

    pub fn int(&self, sql: &str) -> i64 {
        self.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))[0].get::<_, i64>(0)
    }
}
