//! The source connection: parsing `--from`, refusing a transaction pooler, and checking that the
//! client tools are new enough for the server (pure functions, unit-tested).

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config};

use crate::db::connect::Target;
use crate::error::UserError;

/// Parses a connection URL given as `flag`.
pub fn parse_url(url: &str, flag: &str, app: &str) -> Result<Target> {
    let mut config: Config = url.parse().map_err(|e| {
        UserError::new(format!("{flag} is not a valid PostgreSQL URL: {e}"))
            .hint("write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE")
    })?;
    if config.get_hosts().is_empty() {
        config.host("localhost");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config.application_name(app);
    Ok(Target { config })
}

/// Connects to the source with TLS when the server offers it (`sslmode=prefer`, the default) or
/// must (`require`), as libpq does in those modes: the traffic is encrypted and the server's
/// certificate is not verified (Supabase's is signed by Supabase's own CA).
pub async fn connect(target: &Target) -> Result<Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
        .with_no_client_auth();
    let (client, connection) = target
        .config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        .await
        .map_err(|e| target.explain(e))?;
    tokio::spawn(async move {
        // A broken connection shows up as an error on the next query.
        let _ = connection.await;
    });
    Ok(client)
}

/// libpq's `sslmode=require`: encrypt, accept the server's certificate; signatures are still
/// checked, so the handshake proves the server holds the certificate's key.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Refuses a transaction pooler: pg_dump needs one session for its whole snapshot, and
/// Supabase's transaction pooler (Supavisor or PgBouncer, port 6543) hands each transaction to
/// another server connection.
pub fn refuse_transaction_pooler(target: &Target) -> Result<()> {
    let host = match target.config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => return Ok(()),
    };
    let port = target.config.get_ports().first().copied().unwrap_or(5432);
    if port == 6543 {
        let direct = if host.ends_with("pooler.supabase.com") {
            format!(
                "the session pooler ({host}:5432) or the direct connection (db.<project-ref>.supabase.co:5432)"
            )
        } else {
            "the direct connection (port 5432) or a session-mode pooler".to_string()
        };
        return Err(UserError::new(format!(
            "{host}:6543 is a transaction pooler: pg_dump needs one session for its whole snapshot, which a transaction pooler cannot give"
        ))
        .hint(format!("use {direct} in --from (Supabase: Project Settings → Database → Connection string)"))
        .into());
    }
    Ok(())
}

/// libpq's environment for `target`, so that the password never appears on a command line.
pub fn libpq_env(target: &Target, app: &str) -> Vec<String> {
    let c = &target.config;
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let ssl = match c.get_ssl_mode() {
        SslMode::Disable => "disable",
        SslMode::Require => "require",
        _ => "prefer",
    };
    let mut env = vec![
        format!("PGHOST={host}"),
        format!("PGPORT={}", c.get_ports().first().copied().unwrap_or(5432)),
        format!("PGUSER={}", target.user()),
        format!("PGDATABASE={}", target.database()),
        format!("PGSSLMODE={ssl}"),
        format!("PGAPPNAME={app}"),
        "PGCONNECT_TIMEOUT=10".to_string(),
    ];
    if let Some(pw) = c.get_password() {
        env.push(format!("PGPASSWORD={}", String::from_utf8_lossy(pw)));
    }
    env
}

/// `(major, minor)` from `pg_dump --version` output such as `pg_dump (PostgreSQL) 17.6 (Debian 17.6-1)`.
pub fn parse_client_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split_whitespace().nth(2)?;
    let number = |s: &str| -> Option<u32> {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let (major, rest) = v.split_once('.').unwrap_or((v, ""));
    Some((number(major)?, number(rest).unwrap_or(0)))
}

/// pg_dump must be at least the source's major version (it refuses newer servers), and the
/// target must be at least the source's major version (older servers lack newer syntax).
pub fn check_versions(
    source_num: i32,
    client: (u32, u32),
    target_num: i32,
    image: &str,
) -> Result<()> {
    let source_major = (source_num / 10000) as u32;
    if source_major > client.0 {
        return Err(UserError::new(format!(
            "the source runs PostgreSQL {source_major} but the pg_dump in {image} is {}.{}: pg_dump must be at least the source's major version",
            client.0, client.1
        ))
        .hint(format!("set images.postgres in stack.toml to an image with PostgreSQL {source_major} or later, then `stackctl build postgres`"))
        .into());
    }
    let target_major = (target_num / 10000) as u32;
    if source_major > target_major {
        return Err(UserError::new(format!(
            "the source runs PostgreSQL {source_major} but the target runs {target_major}: a restore into an older server is not supported"
        ))
        .hint("upgrade the target first")
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_pooler_url_is_refused_with_the_session_port() {
        let t = parse_url(
            "postgres://postgres.abc:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres",
            "--from",
            "t",
        )
        .unwrap();
        let e = refuse_transaction_pooler(&t).unwrap_err();
        let hint = crate::error::hint_of(&e).unwrap();
        assert!(e.to_string().contains("transaction pooler"), "{e}");
        assert!(hint.contains("pooler.supabase.com:5432"), "{hint}");
        let session = parse_url(
            "postgres://postgres.abc:pw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres",
            "--from",
            "t",
        )
        .unwrap();
        assert!(refuse_transaction_pooler(&session).is_ok());
    }

    #[test]
    fn client_versions_parse() {
        assert_eq!(
            parse_client_version("pg_dump (PostgreSQL) 17.6 (Debian 17.6-1)\n"),
            Some((17, 6))
        );
        assert_eq!(
            parse_client_version("pg_dump (PostgreSQL) 18beta1"),
            Some((18, 0))
        );
        assert_eq!(parse_client_version("garbage"), None);
    }

    // A source newer than the client cannot be had here: no PostgreSQL 18 server image exists on
    // this machine and no registry is reachable. So the check runs with a client version lower
    // than a real source version instead: a PostgreSQL 17.2 source (server_version_num 170002)
    // against a pg_dump 16.4, which is exactly what pg_dump itself would refuse ("aborting because
    // of server version mismatch").
    #[test]
    fn a_source_newer_than_the_client_is_refused() {
        let e = check_versions(170002, (16, 4), 170002, "stackctl/postgres:16").unwrap_err();
        assert!(e.to_string().contains("pg_dump must be at least"), "{e}");
        assert!(
            crate::error::hint_of(&e)
                .unwrap()
                .contains("images.postgres")
        );
        assert!(check_versions(170002, (17, 0), 170006, "x").is_ok());
        assert!(check_versions(150008, (17, 6), 170006, "x").is_ok());
        let e = check_versions(170002, (17, 6), 160004, "x").unwrap_err();
        assert!(e.to_string().contains("older server"), "{e}");
    }
}
