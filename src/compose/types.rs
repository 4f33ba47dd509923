//! The typed subset of the Compose specification: the document tree we read back from the
//! rendered file (services, top-level networks, volumes and configs).
//!
//! Every struct denies unknown fields, so a key outside the subset fails the parse instead of
//! being ignored. The short and long syntaxes of single fields are read by `fields`.

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::fields::{
    DependsOn, PortSpec, ServiceNetwork, VolumeMount, de_command, de_depends_on, de_env, de_expose,
    de_health_test, de_labels, de_networks, de_opt_duration, de_opt_id, de_opt_mode, de_ports,
    de_volumes, null_as_default_map,
};

/// The parsed, interpolated Compose file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    #[serde(default)]
    pub name: Option<String>,
    pub services: IndexMap<String, Service>,
    #[serde(default, deserialize_with = "null_as_default_map")]
    pub networks: IndexMap<String, TopNetwork>,
    #[serde(default, deserialize_with = "null_as_default_map")]
    pub volumes: IndexMap<String, TopVolume>,
    #[serde(default)]
    pub configs: IndexMap<String, TopConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopNetwork {
    #[serde(default)]
    pub external: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopVolume {}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopConfig {
    pub file: String,
}

/// One service, in the subset we implement.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub image: String,
    #[serde(default, deserialize_with = "de_command")]
    pub command: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_command")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_env")]
    pub environment: IndexMap<String, Option<String>>,
    #[serde(default, deserialize_with = "de_volumes")]
    pub volumes: Vec<VolumeMount>,
    #[serde(default)]
    pub configs: Vec<ServiceConfig>,
    #[serde(default, deserialize_with = "de_ports")]
    pub ports: Vec<PortSpec>,
    #[serde(default, deserialize_with = "de_networks")]
    pub networks: IndexMap<String, ServiceNetwork>,
    #[serde(default, deserialize_with = "de_depends_on")]
    pub depends_on: IndexMap<String, DependsOn>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub restart: Option<Restart>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub stop_grace_period: Option<Duration>,
    #[serde(default)]
    pub deploy: Option<Deploy>,
    #[serde(default, deserialize_with = "de_labels")]
    pub labels: IndexMap<String, String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "de_expose")]
    pub expose: Vec<String>,
}

impl Service {
    pub fn replicas(&self) -> u32 {
        self.deploy.as_ref().and_then(|d| d.replicas).unwrap_or(1)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    #[serde(default)]
    pub replicas: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Restart {
    #[serde(rename = "no")]
    No,
    #[serde(rename = "always")]
    Always,
    #[serde(rename = "on-failure")]
    OnFailure,
    #[serde(rename = "unless-stopped")]
    UnlessStopped,
}

/// `configs:` entry of a service, long syntax.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub source: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub mode: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub uid: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub gid: Option<u64>,
}

impl ServiceConfig {
    /// Where the file lands in the container (Compose's default: `/<source>`).
    pub fn target_path(&self) -> String {
        self.target
            .clone()
            .unwrap_or_else(|| format!("/{}", self.source))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    #[serde(deserialize_with = "de_health_test")]
    pub test: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub start_period: Option<Duration>,
}

impl Healthcheck {
    /// The command to exec for a readiness probe: `None` for `NONE`.
    pub fn exec_command(&self) -> Option<Vec<String>> {
        match self.test.first().map(String::as_str) {
            Some("CMD") => Some(self.test[1..].to_vec()),
            Some("CMD-SHELL") => Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                self.test[1..].join(" "),
            ]),
            _ => None,
        }
    }
}
