//! A throw-away PostgreSQL 17 server in a container of our image (`stackctl/postgres:17`),
//! published on a loopback port and removed (with its volumes, and its network if it has one)
//! when dropped. Start-up waits, with a deadline, until the superuser can run a query; a server
//! that never gets there fails the test with its last log lines.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{docker, image_exists, published_port, require_docker};

/// The tag of our PostgreSQL image, as stack.toml's default names it.
pub const IMAGE: &str = "stackctl/postgres:17";

/// How long a new server may take to accept a query.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// What to do when [`IMAGE`] is not on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Build it from `stack/postgres` (see [`postgres_image`]).
    Build,
    /// Fail the test, saying how to build it.
    Fail,
}

/// What differs between the test servers of the crates: everything else is the same.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Containers are named `PREFIX-<pid>-<n>`.
    pub name_prefix: &'a str,
    /// The bootstrap superuser (`POSTGRES_USER`): `postgres`, or another name for a server
    /// built like a hosted Supabase project, where `postgres` is not a superuser.
    pub superuser: &'a str,
    /// The superuser's password.
    pub password: &'a str,
    /// A database to create (`POSTGRES_DB`); without one, `postgres` is the database.
    pub database: Option<&'a str>,
    /// Put the server on a network of its own (`<name>-net`) under this alias, so other
    /// containers (a pooler) reach it by name.
    pub network_alias: Option<&'a str>,
    /// More `docker run` arguments (a volume, say).
    pub docker_args: &'a [&'a str],
    pub if_missing: IfMissing,
}

/// A running server; removed when dropped.
pub struct Postgres {
    pub name: String,
    pub port: u16,
    pub superuser: String,
    pub password: String,
    pub database: String,
    network: Option<String>,
}

impl Postgres {
    /// Starts a server and waits until it accepts a query (on a runtime of its own, so for
    /// tests that are not async).
    pub fn start(opts: &Options) -> Self {
        let pg = Self::run(opts);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(pg.wait_ready());
        pg
    }

    /// [`Postgres::start`] for async tests: waits on the caller's runtime.
    pub async fn start_async(opts: &Options<'_>) -> Self {
        let pg = Self::run(opts);
        pg.wait_ready().await;
        pg
    }

    /// `docker run` with `opts`; the guard exists before anything is created, so whatever
    /// exists is removed even if starting fails.
    fn run(opts: &Options) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let image = match opts.if_missing {
            IfMissing::Build => postgres_image(),
            IfMissing::Fail => {
                assert!(
                    image_exists(IMAGE),
                    "image {IMAGE} is missing: build it with \
                     `docker build --network host -t {IMAGE} stack/postgres` (base debian:trixie-slim from scripts/base-image.sh)"
                );
                IMAGE
            }
        };
        let name = format!(
            "{}-{}-{}",
            opts.name_prefix,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut pg = Postgres {
            name: name.clone(),
            port: 0,
            superuser: opts.superuser.to_string(),
            password: opts.password.to_string(),
            database: opts.database.unwrap_or("postgres").to_string(),
            network: None,
        };
        let mut run: Vec<String> = ["run", "-d", "--rm", "--name", &name]
            .map(String::from)
            .into();
        if let Some(alias) = opts.network_alias {
            let network = format!("{name}-net");
            docker(&["network", "create", &network]);
            run.extend(["--network", &network, "--network-alias", alias].map(String::from));
            pg.network = Some(network);
        }
        run.extend(["-p", "127.0.0.1::5432", "-e"].map(String::from));
        run.push(format!("POSTGRES_PASSWORD={}", opts.password));
        run.extend([
            "-e".to_string(),
            format!("POSTGRES_USER={}", opts.superuser),
        ]);
        if let Some(db) = opts.database {
            run.extend(["-e".to_string(), format!("POSTGRES_DB={db}")]);
        }
        run.extend(opts.docker_args.iter().map(|a| a.to_string()));
        run.push(image.to_string());
        docker(&run.iter().map(String::as_str).collect::<Vec<_>>());
        pg.port = published_port(&pg.name, "5432/tcp");
        pg
    }

    /// Polls fast until the superuser can run `SELECT 1`; the deadline bounds the wait.
    async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        let url = self.url();
        while !accepts_queries(&url).await {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL in {} did not accept connections within {READY_WITHIN:?}; logs:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last log lines of the server (PostgreSQL logs on stderr).
    fn logs(&self) -> String {
        Command::new("docker")
            .args(["logs", "--tail", "30", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default()
    }

    /// The superuser's URL.
    pub fn url(&self) -> String {
        self.url_as(&self.superuser, &self.password)
    }

    /// `user`'s URL for this server's database.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    /// The network of its own, if it was started on one.
    pub fn network(&self) -> Option<&str> {
        self.network.as_deref()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
        if let Some(network) = &self.network {
            let _ = Command::new("docker")
                .args(["network", "rm", network])
                .output();
        }
    }
}

async fn accepts_queries(url: &str) -> bool {
    let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return false;
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.simple_query("SELECT 1").await.is_ok()
}

/// Makes sure [`IMAGE`] exists and returns its tag. When it is missing it is built from
/// `stack/postgres` on the imported base `debian:trixie-slim` (see README, section Tests:
/// `debootstrap` + `docker import` make the base; host networking lets apt reach Debian's mirror).
/// Built once per test run, whichever test asks first.
pub fn postgres_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        require_docker();
        if image_exists(IMAGE) {
            return;
        }
        assert!(
            image_exists("debian:trixie-slim"),
            "the base image debian:trixie-slim is missing; see README, section Tests"
        );
        let ctx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../postgres");
        docker(&[
            "build",
            "--network",
            "host",
            "--build-arg",
            "BASE=debian:trixie-slim",
            "-t",
            IMAGE,
            ctx.to_str().expect("a UTF-8 path"),
        ]);
    });
    IMAGE
}
