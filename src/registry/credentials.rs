//! Registry credentials and where they come from: `--username` with `--password-stdin` (or
//! `STACKCTL_REGISTRY_USERNAME` / `STACKCTL_REGISTRY_PASSWORD`), else the user's Docker config
//! (`$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`): a `credHelpers` entry for the
//! registry, else the `credsStore`, else the base64 `auth` of its `auths` entry. A helper is run
//! as `docker-credential-NAME get` with the server on stdin and answers JSON, as the Docker CLI
//! does it. The secret is never printed: `Debug` redacts it and errors name only its source.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use serde::Deserialize;

use crate::error::UserError;

/// The environment variables read when no `--password-stdin` is given.
pub const ENV_USERNAME: &str = "STACKCTL_REGISTRY_USERNAME";
pub const ENV_PASSWORD: &str = "STACKCTL_REGISTRY_PASSWORD";

/// A user and a secret for one registry, and where they were found (for error messages).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub secret: Secret,
    pub source: String,
}

#[derive(Clone)]
pub enum Secret {
    Password(String),
    /// An OAuth2 refresh token (a helper answers `Username: "<token>"` for these).
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    /// The form the Docker Engine takes (`X-Registry-Auth`).
    pub fn to_docker(&self, server: &str) -> bollard::auth::DockerCredentials {
        let mut c = bollard::auth::DockerCredentials {
            serveraddress: Some(server.to_string()),
            ..Default::default()
        };
        match &self.secret {
            Secret::Password(p) => {
                c.username = Some(self.username.clone());
                c.password = Some(p.clone());
            }
            Secret::IdentityToken(t) => c.identitytoken = Some(t.clone()),
        }
        c
    }
}

/// Credentials given on the command line or in the environment, if any: `username` with the
/// password read from stdin (one line) when `password_stdin`, else from `STACKCTL_REGISTRY_PASSWORD`.
pub fn explicit(username: Option<&str>, password_stdin: bool) -> Result<Option<Credentials>> {
    let Some(user) = username.filter(|u| !u.is_empty()) else {
        if password_stdin {
            return Err(UserError::new("--password-stdin needs --username")
                .hint(format!("pass --username U (or set {ENV_USERNAME})"))
                .into());
        }
        return Ok(None);
    };
    let (password, source) = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        (
            line.trim_end_matches(['\r', '\n']).to_string(),
            "--username and --password-stdin".to_string(),
        )
    } else {
        (
            std::env::var(ENV_PASSWORD).unwrap_or_default(),
            format!("--username and {ENV_PASSWORD}"),
        )
    };
    if password.is_empty() {
        return Err(UserError::new(format!("no password for registry user {user}"))
            .hint(format!(
                "pipe it in: `printf %s \"$TOKEN\" | stackctl publish ... --username {user} --password-stdin`, or set {ENV_PASSWORD}"
            ))
            .into());
    }
    Ok(Some(Credentials {
        username: user.to_string(),
        secret: Secret::Password(password),
        source,
    }))
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// `https://host/v1/` and `http://host` -> `host`, as the Docker CLI matches `auths` keys.
fn hostname_of(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// The credentials the Docker config holds for `server` (a registry's config key), if any.
pub async fn from_docker_config(server: &str) -> Result<Option<Credentials>> {
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let cfg: ConfigFile = serde_json::from_str(&text).map_err(|e| {
        UserError::new(format!(
            "{} is not a valid Docker config: {e}",
            path.display()
        ))
        .hint("fix the file, or point DOCKER_CONFIG at a directory with a valid config.json")
    })?;
    let host = hostname_of(server);
    let helper = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| hostname_of(k) == host)
        .map(|(_, v)| v.clone());
    if let Some(helper) = helper {
        return run_helper(&helper, server, &path).await;
    }
    if let Some(store) = cfg.creds_store.as_deref().filter(|s| !s.is_empty())
        && let Some(c) = run_helper(store, server, &path).await?
    {
        return Ok(Some(c));
    }
    let Some(entry) = cfg
        .auths
        .iter()
        .find(|(k, _)| hostname_of(k) == host)
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let source = format!("{} (auths.\"{host}\")", path.display());
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: entry.username.clone().unwrap_or_default(),
            secret: Secret::IdentityToken(token.to_string()),
            source,
        }));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = || {
            UserError::new(format!(
                "{}: the `auth` of `{host}` is not base64 of USER:PASSWORD",
                path.display()
            ))
            .hint(format!("log in again: `docker login {host}`"))
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (user, pass) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            secret: Secret::Password(pass.to_string()),
            source,
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials {
            username: u.clone(),
            secret: Secret::Password(p.clone()),
            source,
        })),
        _ => Ok(None),
    }
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// `docker-credential-NAME get`, the server on stdin. "Not found" is no credentials.
async fn run_helper(
    name: &str,
    server: &str,
    config: &std::path::Path,
) -> Result<Option<Credentials>> {
    use tokio::io::AsyncWriteExt;
    let program = format!("docker-credential-{name}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            UserError::new(format!(
                "{} names the credential helper `{name}`, but `{program}` cannot be run: {e}",
                config.display()
            ))
            .hint(format!(
                "install {program} on PATH, or remove it from the Docker config and log in again (`docker login`), or pass --username U --password-stdin"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .with_context(|| format!("writing to {program}"))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("{program} get: no answer within 60 s"))?
        .with_context(|| format!("running {program} get"))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if text.to_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(UserError::new(format!(
            "the credential helper {program} failed for {server}: {}",
            text.trim()
        ))
        .hint(format!(
            "log in again (`docker login {}`), or pass --username U --password-stdin",
            hostname_of(server)
        ))
        .into());
    }
    let a: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(|e| {
        UserError::new(format!(
            "{program} get answered something that is not its JSON: {e}"
        ))
        .hint("check the helper with `echo SERVER | docker-credential-NAME get`")
    })?;
    if a.secret.is_empty() {
        return Ok(None);
    }
    let source = format!("the credential helper {program}");
    Ok(Some(if a.username == "<token>" {
        Credentials {
            username: String::new(),
            secret: Secret::IdentityToken(a.secret),
            source,
        }
    } else {
        Credentials {
            username: a.username,
            secret: Secret::Password(a.secret),
            source,
        }
    }))
}

/// Explicit credentials when given, else the Docker config's for `server`.
pub async fn resolve(explicit: Option<Credentials>, server: &str) -> Result<Option<Credentials>> {
    match explicit {
        Some(c) => Ok(Some(c)),
        None => from_docker_config(server).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_keys_match_by_host() {
        assert_eq!(
            hostname_of("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(hostname_of("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(hostname_of("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials {
            username: "u".into(),
            secret: Secret::Password("hunter2".into()),
            source: "test".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
