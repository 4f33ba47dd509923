//! What only the `swarm` target needs: every secret as a file of its own (Swarm secrets are read
//! from files by `docker stack deploy`; it does not read `.env`), the connection strings that hold
//! a password as secrets too, each migration as a config, and content-versioned object names
//! (Swarm secrets and configs cannot change in place, so new content gets a new name and the
//! services using it roll).

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ConfigFile;
use crate::config::{PoolerKind, Stack};
use crate::files;
use crate::secrets::{EnvFile, SECRETS};

/// A file the stack file refers to as a Swarm secret or config.
#[derive(Debug, Clone, Serialize)]
pub struct SwarmFile {
    /// Its key under the stack file's top-level `secrets:` / `configs:` (and, for secrets, the
    /// file name under `/run/secrets/`).
    pub name: String,
    /// Its path under the files directory (`../files/` from the stack file).
    pub path: String,
    /// The Swarm object's name: `<project>_<name>_<first 10 hex of its SHA-256>`.
    pub swarm_name: String,
    /// Only for migrations: the file name under `/migrations/`.
    pub file: String,
    #[serde(skip)]
    pub contents: Vec<u8>,
    /// Written by `render` under `secrets/` (the config files holding secrets are written with
    /// the other config files).
    #[serde(skip)]
    pub own_file: bool,
}

/// Everything the swarm target adds to a render.
#[derive(Debug, Default)]
pub struct SwarmParts {
    pub secrets: Vec<SwarmFile>,
    pub migrations: Vec<SwarmFile>,
    /// Each config file's Swarm object name, by its key.
    pub config_names: std::collections::BTreeMap<&'static str, String>,
}

/// `<project>_<name>_<hash>`: a new content, a new Swarm object.
pub fn versioned(project: &str, name: &str, contents: &[u8]) -> String {
    let hash = hex::encode(Sha256::digest(contents));
    format!("{project}_{}_{}", name.to_ascii_lowercase(), &hash[..10])
}

/// The swarm target's secrets and migration configs. `configs` are the rendered config files
/// with the bytes of those `init` made (certificates) in `referenced`.
pub fn parts(
    stack: &Stack,
    env: &EnvFile,
    configs: &[ConfigFile],
    referenced: &[(&str, Vec<u8>)],
    migrations_dir: &str,
    migrations: &[(String, Vec<u8>)],
) -> SwarmParts {
    let project = &stack.file.project.name;
    let config_names = configs
        .iter()
        .map(|c| (c.name, versioned(project, c.name, &c.bytes(referenced))))
        .collect();
    let mut secrets = Vec::new();
    let mut own = |name: &str, value: String| {
        let contents = value.into_bytes();
        secrets.push(SwarmFile {
            name: name.to_string(),
            path: format!("secrets/{name}"),
            swarm_name: versioned(project, name, &contents),
            file: String::new(),
            contents,
            own_file: true,
        });
    };
    for s in SECRETS {
        if let Some(v) = env.get(s.key).filter(|v| !v.is_empty()) {
            own(s.key, v.to_string());
        }
    }
    if let Some(v) = env
        .get("RUNNER_SECRETS_KEY_PREVIOUS")
        .filter(|v| !v.is_empty())
    {
        own("RUNNER_SECRETS_KEY_PREVIOUS", v.to_string());
    }
    for (name, url) in connection_strings(stack, env) {
        own(name, url);
    }
    for c in configs.iter().filter(|c| c.mode == files::SECRET) {
        let contents = c.bytes(referenced);
        secrets.push(SwarmFile {
            name: c.name.to_string(),
            path: c.path.to_string(),
            swarm_name: versioned(project, c.name, &contents),
            file: String::new(),
            contents,
            own_file: false,
        });
    }
    let migrations = migrations
        .iter()
        .map(|(file, contents)| {
            let name = format!("migration_{}", key_of(file));
            SwarmFile {
                swarm_name: versioned(project, &name, contents),
                name,
                path: format!("{migrations_dir}/{file}"),
                file: file.clone(),
                contents: contents.clone(),
                own_file: false,
            }
        })
        .collect();
    SwarmParts {
        secrets,
        migrations,
        config_names,
    }
}

/// A file name as a Compose key: letters, digits and `_` only.
fn key_of(file: &str) -> String {
    file.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The connection strings that carry a login's password, as the services read them (the same
/// hosts as the local target's `environment:`).
fn connection_strings(stack: &Stack, env: &EnvFile) -> Vec<(&'static str, String)> {
    let db = &stack.file.postgres.database;
    let url = |user: &str, key: &str, host: &str| {
        format!(
            "postgres://{user}:{}@{host}/{db}",
            env.get(key).unwrap_or_default()
        )
    };
    // pgCat cannot authenticate postgate's tenant logins (SCRAM): postgate goes direct then.
    let postgate_host = match stack.pooler() {
        PoolerKind::Pgbouncer => "pooler:6432",
        PoolerKind::Pgcat => "postgres:5432",
    };
    vec![
        (
            "POSTGATE_DATABASE_URL",
            url("postgate", "POSTGATE_DB_PASSWORD", postgate_host),
        ),
        (
            "POSTGATE_LISTEN_DATABASE_URL",
            url("postgate", "POSTGATE_DB_PASSWORD", "postgres:5432"),
        ),
        (
            "RUNNER_DATABASE_URL",
            url("runner", "RUNNER_DB_PASSWORD", "postgres:5432"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_content_gets_a_new_name() {
        let a = versioned("shop", "POSTGRES_PASSWORD", b"one");
        let b = versioned("shop", "POSTGRES_PASSWORD", b"two");
        assert!(a.starts_with("shop_postgres_password_"), "{a}");
        assert_eq!(a.len(), "shop_postgres_password_".len() + 10);
        assert_ne!(a, b);
        assert_eq!(a, versioned("shop", "POSTGRES_PASSWORD", b"one"));
        assert_eq!(key_of("V1__create shop.sql"), "V1__create_shop_sql");
    }
}
