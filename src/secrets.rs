//! The stack's secrets: what they are, how they are generated, and the `.env` file that holds them.
//!
//! `.env` is the single home of every secret. It is written 0600, atomically, and never loses a byte:
//! `init` only appends what is missing, `rotate` rewrites the chosen keys after keeping a timestamped
//! 0600 backup. Passwords use `[A-Za-z0-9]` only, so they are safe unquoted in `.env` and in URLs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::error::UserError;
use crate::files;

/// How a secret's value is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// 32 characters of `[A-Za-z0-9]`: about 190 bits.
    Password,
    /// 32 random bytes, hex encoded.
    Hex32,
}

/// One secret of the stack, with the PostgreSQL login it belongs to (if any).
#[derive(Debug, Clone, Copy)]
pub struct SecretSpec {
    pub key: &'static str,
    pub kind: SecretKind,
    pub what: &'static str,
    /// The PostgreSQL role whose password this is.
    pub role: Option<&'static str>,
    /// Whether that role logs in through the pooler (and so appears in the pooler's user list).
    pub pooled: bool,
}

/// Every secret the stack needs, in the order they are written to `.env`.
pub const SECRETS: &[SecretSpec] = &[
    SecretSpec {
        key: "POSTGRES_PASSWORD",
        kind: SecretKind::Password,
        what: "PostgreSQL superuser (postgres)",
        role: Some("postgres"),
        pooled: false,
    },
    SecretSpec {
        key: "MIGRATOR_PASSWORD",
        kind: SecretKind::Password,
        what: "login db_migrator: owns application schemas, runs migrations",
        role: Some("db_migrator"),
        pooled: false,
    },
    SecretSpec {
        key: "AUTHENTICATOR_PASSWORD",
        kind: SecretKind::Password,
        what: "login db_authenticator: may only SET ROLE web_anon or app_user",
        role: Some("db_authenticator"),
        pooled: true,
    },
    SecretSpec {
        key: "POSTGATE_DB_PASSWORD",
        kind: SecretKind::Password,
        what: "login postgate: the SQL-over-HTTP gateway",
        role: Some("postgate"),
        pooled: true,
    },
    SecretSpec {
        key: "RUNNER_DB_PASSWORD",
        kind: SecretKind::Password,
        what: "login runner: the worker runtime",
        role: Some("runner"),
        pooled: true,
    },
    SecretSpec {
        key: "APP_DB_PASSWORD",
        kind: SecretKind::Password,
        what: "login app: applications (member of app_user)",
        role: Some("app"),
        pooled: true,
    },
    SecretSpec {
        key: "JWT_SECRET",
        kind: SecretKind::Hex32,
        what: "HS256 key for API JWTs",
        role: None,
        pooled: false,
    },
    SecretSpec {
        key: "POSTGATE_TOKEN_PEPPER",
        kind: SecretKind::Hex32,
        what: "HMAC key for postgate token hashes",
        role: None,
        pooled: false,
    },
    SecretSpec {
        key: "RUNNER_SECRETS_KEY",
        kind: SecretKind::Hex32,
        what: "ChaCha20-Poly1305 key sealing worker secrets at rest (runner)",
        role: None,
        pooled: false,
    },
    SecretSpec {
        key: "RUNNER_WORKFLOWS_TOKEN",
        kind: SecretKind::Hex32,
        what: "bearer token of the runner's workflows HTTP API (/workflows/...)",
        role: None,
        pooled: false,
    },
    SecretSpec {
        key: "POOLER_ADMIN_PASSWORD",
        kind: SecretKind::Password,
        what: "pooler admin console (pooler_admin)",
        role: Some("pooler_admin"),
        pooled: false,
    },
    SecretSpec {
        key: "POOLER_AUTH_PASSWORD",
        kind: SecretKind::Password,
        what: "login pooler_auth: PgBouncer's auth_user (looks up postgate's tenant logins)",
        role: Some("pooler_auth"),
        pooled: false,
    },
    SecretSpec {
        key: "MONITOR_DB_PASSWORD",
        kind: SecretKind::Password,
        what: "login monitor: the metrics exporters (pg_monitor, no table data)",
        role: Some("monitor"),
        pooled: false,
    },
    SecretSpec {
        key: "BACKUP_PASSPHRASE",
        kind: SecretKind::Password,
        what: "pgBackRest repository encryption (aes-256-cbc); without it no backup can be read",
        role: None,
        pooled: false,
    },
    SecretSpec {
        key: "GRAFANA_ADMIN_PASSWORD",
        kind: SecretKind::Password,
        what: "Grafana admin user",
        role: None,
        pooled: false,
    },
];

/// Secrets whose replaced values must stay usable for a while, and the `.env` key that keeps
/// them (comma-separated, newest first): worker secrets sealed under an earlier
/// `RUNNER_SECRETS_KEY` open with it until the runner has sealed them again under the new one.
pub const KEEPS_PREVIOUS: &[(&str, &str)] =
    &[("RUNNER_SECRETS_KEY", "RUNNER_SECRETS_KEY_PREVIOUS")];

/// Finds a secret's spec by its key.
pub fn spec(key: &str) -> Option<&'static SecretSpec> {
    SECRETS.iter().find(|s| s.key == key)
}

/// Generates a fresh value from the operating system's CSPRNG (through `rand`'s thread RNG,
/// a ChaCha CSPRNG seeded and reseeded from the OS).
pub fn generate(kind: SecretKind) -> String {
    let mut rng = rand::rng();
    match kind {
        SecretKind::Password => (&mut rng)
            .sample_iter(Alphanumeric)
            .take(32)
            .map(char::from)
            .collect(),
        SecretKind::Hex32 => {
            let bytes: [u8; 32] = rng.random();
            hex::encode(bytes)
        }
    }
}

/// The parsed `.env`: its values, and its raw text so rewrites keep every other byte.
#[derive(Debug, Clone, Default)]
pub struct EnvFile {
    pub path: PathBuf,
    pub raw: String,
    pub values: BTreeMap<String, String>,
}

impl EnvFile {
    /// Reads `.env`; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self> {
        let raw = match fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut values = BTreeMap::new();
        for (n, item) in dotenvy::from_read_iter(raw.as_bytes()).enumerate() {
            let (k, v) = item.map_err(|e| {
                UserError::new(format!("{}: cannot parse entry {}: {e}", path.display(), n + 1))
                    .hint("fix the line by hand (KEY=value), or move the file away and run `stackctl init`")
            })?;
            values.insert(k, v);
        }
        Ok(Self {
            path: path.to_path_buf(),
            raw,
            values,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Checks that every secret is present and non-empty; names the first bad key.
    pub fn require_all(&self) -> Result<()> {
        for s in SECRETS {
            match self.get(s.key) {
                None => {
                    return Err(UserError::new(format!(
                        "{} is missing the secret {} ({})",
                        self.path.display(),
                        s.key,
                        s.what
                    ))
                    .hint(
                        "run `stackctl init`: it adds missing secrets and keeps the ones you have",
                    )
                    .into());
                }
                Some("") => {
                    return Err(UserError::new(format!(
                        "{} holds an empty value for {} ({})",
                        self.path.display(),
                        s.key,
                        s.what
                    ))
                    .hint(format!(
                        "remove the `{}=` line and run `stackctl init` to generate it, or `stackctl init --rotate {}`",
                        s.key, s.key
                    ))
                    .into());
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The password of a PostgreSQL role, from its secret.
    pub fn role_password(&self, role: &str) -> Option<&str> {
        SECRETS
            .iter()
            .find(|s| s.role == Some(role))
            .and_then(|s| self.get(s.key))
    }
}

/// What `ensure` did.
#[derive(Debug, Default)]
pub struct EnsureReport {
    pub created_file: bool,
    pub added: Vec<&'static str>,
}

/// Adds every missing secret to `.env`, keeping each existing byte. Writes nothing when complete.
pub fn ensure(path: &Path) -> Result<EnsureReport> {
    let env = EnvFile::load(path)?;
    let mut report = EnsureReport {
        created_file: !path.exists(),
        ..Default::default()
    };
    let mut text = env.raw.clone();
    if report.created_file {
        text.push_str("# Secrets of this stack, generated by `stackctl init`. Keep this file private (0600).\n");
        text.push_str(
            "# `stackctl init` adds missing keys; `stackctl init --rotate KEY` replaces one.\n",
        );
    }
    for s in SECRETS {
        if env.values.contains_key(s.key) {
            continue;
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("# {}\n{}={}\n", s.what, s.key, generate(s.kind)));
        report.added.push(s.key);
    }
    if report.created_file || !report.added.is_empty() {
        files::write_atomic(path, text.as_bytes(), files::SECRET)?;
    } else {
        tighten_mode(path)?;
    }
    Ok(report)
}

/// What `rotate` did.
#[derive(Debug)]
pub struct Rotated {
    /// The copy of `.env` as it was.
    pub backup: PathBuf,
    /// `(rotated key, key that now keeps its earlier values)`, from [`KEEPS_PREVIOUS`].
    pub kept_previous: Vec<(&'static str, &'static str)>,
}

/// Replaces the named secrets with fresh values after a timestamped 0600 backup of `.env`; the
/// old value of a key in [`KEEPS_PREVIOUS`] is put first in its `…_PREVIOUS` key.
pub fn rotate(path: &Path, keys: &[String]) -> Result<Rotated> {
    for k in keys {
        if spec(k).is_none() {
            let known: Vec<&str> = SECRETS.iter().map(|s| s.key).collect();
            bail!(
                UserError::new(format!("unknown secret `{k}`"))
                    .hint(format!("secrets are: {}", known.join(", ")))
            );
        }
    }
    let env = EnvFile::load(path)?;
    if env.raw.is_empty() {
        bail!(
            UserError::new(format!("{} does not exist", path.display()))
                .hint("run `stackctl init` first")
        );
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let backup = path.with_file_name(format!(".env.bak.{stamp}"));
    files::write_atomic(&backup, env.raw.as_bytes(), files::SECRET)?;

    // key -> (new value, the comment above it when the key is new to the file)
    let mut updates: BTreeMap<&str, (String, String)> = BTreeMap::new();
    let mut kept_previous = Vec::new();
    for k in keys {
        let s = spec(k).expect("checked above");
        updates.insert(s.key, (generate(s.kind), s.what.to_string()));
        let previous = KEEPS_PREVIOUS.iter().find(|(key, _)| *key == s.key);
        if let (Some(&(key, prev)), Some(old)) =
            (previous, env.get(s.key).filter(|v| !v.is_empty()))
        {
            let value = match env.get(prev).filter(|v| !v.is_empty()) {
                Some(earlier) => format!("{old},{earlier}"),
                None => old.to_string(),
            };
            let what = format!(
                "earlier {key} values, newest first: the runner seals worker secrets again under the current key as it starts; remove this line once every replica has (`stackctl up runner`)"
            );
            updates.insert(prev, (value, what));
            kept_previous.push((key, prev));
        }
    }

    let mut out = String::with_capacity(env.raw.len());
    let mut replaced = std::collections::BTreeSet::new();
    for line in env.raw.split_inclusive('\n') {
        let body = line.trim_start();
        let body = body.strip_prefix("export ").unwrap_or(body);
        let key = body.split('=').next().unwrap_or("").trim();
        match updates.get_key_value(key) {
            Some((&k, (value, _))) if body.contains('=') => {
                let nl = if line.ends_with('\n') { "\n" } else { "" };
                out.push_str(&format!("{k}={value}{nl}"));
                replaced.insert(k);
            }
            _ => out.push_str(line),
        }
    }
    for (k, (value, what)) in &updates {
        if !replaced.contains(k) {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("# {what}\n{k}={value}\n"));
        }
    }
    files::write_atomic(path, out.as_bytes(), files::SECRET)?;
    Ok(Rotated {
        backup,
        kept_previous,
    })
}

/// Makes sure an existing `.env` is not readable by others (without touching its bytes).
fn tighten_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(files::SECRET))
            .with_context(|| format!("making {} private (0600)", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_url_and_env_safe() {
        for _ in 0..100 {
            let p = generate(SecretKind::Password);
            assert_eq!(p.len(), 32);
            assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()), "{p}");
        }
        let h = generate(SecretKind::Hex32);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(generate(SecretKind::Hex32), h);
    }

    #[test]
    fn every_login_role_has_one_secret() {
        let mut roles: Vec<_> = SECRETS.iter().filter_map(|s| s.role).collect();
        let n = roles.len();
        roles.sort();
        roles.dedup();
        assert_eq!(roles.len(), n);
    }
}
