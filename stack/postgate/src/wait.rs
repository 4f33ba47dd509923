//! Waiting at start-up until PostgreSQL answers and the platform migrations a service needs are
//! in (a relation they create exists), with a deadline and a log line while waiting.
//!
//! Compose starts postgate and the runner only once the database is healthy and the migrate job
//! has finished (`depends_on`); Docker Swarm ignores `depends_on` and starts every service at
//! once, so both wait here instead, and fail with a clear error at the deadline (the
//! orchestrator then restarts them).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio_postgres::NoTls;

/// How long a service waits by default (`POSTGATE_DB_WAIT_SECS` / `RUNNER_DB_WAIT_SECS`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(180);

/// Waits until `url` accepts `who`'s login and `relation` (e.g. `postgate.tokens`) exists. A
/// refused password is waited on too: before the migrate job has run, the login does not exist.
pub async fn until_ready(who: &str, url: &str, relation: &str, within: Duration) -> Result<()> {
    let config: tokio_postgres::Config = url.parse()?;
    let target = describe(&config);
    let started = Instant::now();
    let mut said = false;
    loop {
        let why = match probe(&config, relation).await {
            Ok(true) => {
                if said {
                    tracing::info!(
                        "{who}: PostgreSQL at {target} is ready (after {:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(());
            }
            Ok(false) => format!("{relation} does not exist yet (the migrate job has not run)"),
            Err(e) if is_password_refused(&e) => {
                format!(
                    "it refused {who}'s login ({e}); the migrate job creates it and sets its password"
                )
            }
            Err(e) => format!("{e}"),
        };
        if started.elapsed() >= within {
            bail!(
                "PostgreSQL at {target} was not ready within {} s: {why}",
                within.as_secs()
            );
        }
        if !said {
            tracing::info!(
                "{who}: waiting for PostgreSQL at {target} (up to {} s): {why}",
                within.as_secs()
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether `relation` exists, over one short connection.
async fn probe(
    config: &tokio_postgres::Config,
    relation: &str,
) -> Result<bool, tokio_postgres::Error> {
    let mut config = config.clone();
    config.connect_timeout(Duration::from_secs(5));
    let (client, conn) = config.connect(NoTls).await?;
    let conn = tokio::spawn(conn);
    let found = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .await?
        .get(0);
    drop(client);
    let _ = conn.await;
    Ok(found)
}

fn is_password_refused(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD)
}

/// `USER@HOST:PORT/DATABASE`, never the password.
fn describe(c: &tokio_postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or("?"),
        c.get_dbname().unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_named_without_its_password() {
        let c: tokio_postgres::Config = "postgres://postgate:s3cret@pooler:6432/app"
            .parse()
            .unwrap();
        assert_eq!(describe(&c), "postgate@pooler:6432/app");
    }

    #[tokio::test]
    async fn nothing_listening_ends_at_the_deadline_with_the_reason() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://postgate:pw@127.0.0.1:{port}/app");
        let started = Instant::now();
        let err = until_ready("postgate", &url, "postgate.tokens", Duration::from_secs(1))
            .await
            .unwrap_err()
            .to_string();
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert!(
            err.contains(&format!(
                "postgate@127.0.0.1:{port}/app was not ready within 1 s"
            )),
            "{err}"
        );
        assert!(!err.contains("pw@"), "{err}");
    }
}
