//! Connecting to PostgreSQL, with errors that say where we tried, as whom, and why it failed.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::UserError;

/// A database to connect to, and how to name it to a person (never with the password).
#[derive(Clone)]
pub struct Target {
    pub config: Config,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Target {
    /// From a `postgres://` URL (or a `key=value` connection string).
    pub fn from_url(url: &str) -> Result<Self> {
        let mut config: Config = url.parse().map_err(|e| {
            UserError::new(format!("--database-url is not a valid PostgreSQL URL: {e}"))
                .hint("write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        })?;
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        Ok(Self::with_defaults(config))
    }

    /// From libpq's environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE), as the
    /// migrate container receives them.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut config = Config::new();
        config.host(get("PGHOST").as_deref().unwrap_or("localhost"));
        if let Some(port) = get("PGPORT").and_then(|p| p.parse().ok()) {
            config.port(port);
        }
        let user = get("PGUSER").unwrap_or_else(|| "postgres".into());
        config.dbname(get("PGDATABASE").as_deref().unwrap_or(&user));
        config.user(&user);
        if let Some(pw) = get("PGPASSWORD") {
            config.password(pw);
        }
        Self::with_defaults(config)
    }

    fn with_defaults(mut config: Config) -> Self {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("stackctl migrate");
        Self { config }
    }

    /// The same server and database, as another login.
    pub fn as_login(&self, user: &str, password: &str) -> Self {
        let mut config = self.config.clone();
        config.user(user).password(password);
        Self { config }
    }

    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or_else(|| self.user())
    }

    /// `host:port`, as tried.
    pub fn address(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    /// `USER@HOST:PORT/DATABASE`.
    pub fn describe(&self) -> String {
        format!("{}@{}/{}", self.user(), self.address(), self.database())
    }

    /// Connects; the connection is driven on the current runtime until the client is dropped.
    pub async fn connect(&self) -> Result<Client> {
        self.connect_waiting(Duration::ZERO).await
    }

    /// Connects, retrying for up to `within` while the server is unreachable or starting (the
    /// migrate job under Docker Swarm, which starts it beside PostgreSQL rather than after it),
    /// with one line on stderr while it waits. Any other refusal is reported at once.
    pub async fn connect_waiting(&self, within: Duration) -> Result<Client> {
        let started = std::time::Instant::now();
        let mut said = false;
        loop {
            match self.config.connect(NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        // A broken connection shows up as an error on the next query.
                        let _ = connection.await;
                    });
                    if said {
                        eprintln!(
                            "PostgreSQL at {} answered after {:.1} s",
                            self.address(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(client);
                }
                Err(e) => {
                    let starting = e
                        .as_db_error()
                        .is_none_or(|d| *d.code() == SqlState::CANNOT_CONNECT_NOW);
                    if !starting || started.elapsed() >= within {
                        return Err(self.explain(e));
                    }
                    if !said {
                        eprintln!(
                            "waiting for PostgreSQL at {} (up to {} s): {e}",
                            self.address(),
                            within.as_secs()
                        );
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    pub fn explain(&self, e: tokio_postgres::Error) -> anyhow::Error {
        let (user, addr, db) = (self.user(), self.address(), self.database());
        if let Some(db_err) = e.as_db_error() {
            let code = db_err.code();
            let msg = db_err.message().to_string();
            let err = if *code == SqlState::INVALID_PASSWORD {
                UserError::new(format!("PostgreSQL at {addr} refused the password of {user}: {msg}")).hint(if user == "postgres" {
                    "the password must be the one the database was created with (POSTGRES_PASSWORD when its volume was first initialised)"
                } else {
                    "run `stackctl migrate` with the superuser first: it sets each login's password from .env"
                })
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                UserError::new(format!("PostgreSQL at {addr} has no database {db}: {msg}"))
                    .hint(format!("create it (`createdb -h HOST -U {user} {db}`) or name an existing one in the URL"))
            } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                UserError::new(format!(
                    "PostgreSQL at {addr} does not let {user} connect to {db}: {msg}"
                ))
                .hint("check pg_hba.conf on the server, or the user in the URL")
            } else if *code == SqlState::CANNOT_CONNECT_NOW {
                UserError::new(format!(
                    "PostgreSQL at {addr} is not accepting connections yet: {msg}"
                ))
                .hint("wait until it is ready (`pg_isready`), then run again")
            } else {
                UserError::new(format!(
                    "connecting to PostgreSQL at {addr} as {user} (database {db}) failed: {msg} (SQLSTATE {})",
                    code.code()
                ))
            };
            return err.into();
        }
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why.push_str(": ");
            why.push_str(&s.to_string());
            source = s.source();
        }
        UserError::new(format!("cannot reach PostgreSQL at {addr} (as {user}, database {db}): {why}"))
            .hint("is the server running and listening there? Check the host and port of --database-url (or PGHOST/PGPORT)")
            .into()
    }
}

/// Checks that the connected role may run the bootstrap (a superuser) on PostgreSQL 16 or later.
pub async fn check_superuser(client: &Client, target: &Target) -> Result<()> {
    let row = client
        .query_one("SELECT rolsuper, current_setting('server_version_num')::int FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .context("checking the connected role")?;
    let (superuser, version): (bool, i32) = (row.get(0), row.get(1));
    if version < 160000 {
        return Err(UserError::new(format!(
            "{} runs PostgreSQL {}.{}; stackctl migrate needs 16 or later (per-grant INHERIT/SET options)",
            target.address(),
            version / 10000,
            version % 10000 / 100
        ))
        .into());
    }
    if !superuser {
        return Err(UserError::new(format!(
            "{} is not a superuser: the role bootstrap creates roles and sets their passwords, so it must run as one",
            target.user()
        ))
        .hint("use the superuser in --database-url, e.g. postgres://postgres:PASSWORD@HOST:5432/DB")
        .into());
    }
    Ok(())
}
