//! The stack's TLS material: a private CA and a server certificate for PostgreSQL (rcgen).
//!
//! Files live in `certs/`: `ca.crt`, `ca.key`, `server.crt`, `server.key`; keys are 0600. Existing
//! files are kept, so `init` is idempotent; a missing server certificate is issued from the existing
//! CA, so clients that trust the CA keep working.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::files;

pub const CERTS_DIR: &str = "certs";

/// Which files `ensure` wrote.
#[derive(Debug, Default)]
pub struct TlsReport {
    pub written: Vec<String>,
}

/// The names the PostgreSQL server certificate answers to.
pub fn server_names(project: &str) -> Vec<String> {
    vec![
        "postgres".into(),
        "pooler".into(),
        "pgbouncer".into(),
        "pgcat".into(),
        format!("{project}-postgres-1"),
        "localhost".into(),
        "127.0.0.1".into(),
    ]
}

/// Creates whatever TLS material is missing under `dir/certs`.
pub fn ensure(dir: &Path, project: &str) -> Result<TlsReport> {
    let certs = dir.join(CERTS_DIR);
    let (ca_crt, ca_key) = (certs.join("ca.crt"), certs.join("ca.key"));
    let (srv_crt, srv_key) = (certs.join("server.crt"), certs.join("server.key"));
    let mut report = TlsReport::default();

    let (ca_pem, ca_key_pair) = if ca_crt.exists() && ca_key.exists() {
        let key_pem =
            fs::read_to_string(&ca_key).with_context(|| format!("reading {}", ca_key.display()))?;
        let key =
            KeyPair::from_pem(&key_pem).with_context(|| format!("parsing {}", ca_key.display()))?;
        (fs::read_to_string(&ca_crt)?, key)
    } else {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("stackctl CA ({project})"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params
            .self_signed(&key)
            .context("signing the CA certificate")?;
        files::write_atomic(&ca_key, key.serialize_pem().as_bytes(), files::SECRET)?;
        files::write_atomic(&ca_crt, cert.pem().as_bytes(), files::PUBLIC)?;
        report
            .written
            .extend(["certs/ca.crt".to_string(), "certs/ca.key".to_string()]);
        // A new CA invalidates any old server certificate.
        let _ = fs::remove_file(&srv_crt);
        (cert.pem(), key)
    };

    if !(srv_crt.exists() && srv_key.exists()) {
        let issuer =
            Issuer::from_ca_cert_pem(&ca_pem, ca_key_pair).context("loading the stack CA")?;
        let key = KeyPair::generate().context("generating the server key")?;
        let names = server_names(project);
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for n in &names {
            params
                .subject_alt_names
                .push(match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(n.as_str().try_into()?),
                });
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "postgres");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params
            .signed_by(&key, &issuer)
            .context("signing the server certificate")?;
        files::write_atomic(&srv_key, key.serialize_pem().as_bytes(), files::SECRET)?;
        files::write_atomic(&srv_crt, cert.pem().as_bytes(), files::PUBLIC)?;
        report.written.extend([
            "certs/server.crt".to_string(),
            "certs/server.key".to_string(),
        ]);
    }
    Ok(report)
}
