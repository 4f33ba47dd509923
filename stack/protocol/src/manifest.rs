//! The runner's deploy protocol: the [`Manifest`] `stackctl worker deploy` sends on the stdin of
//! `runner worker deploy` (one JSON line, so that source and secret values never appear in argv
//! or an environment `docker inspect` shows), and the [`Deployed`] answer the runner prints.
//!
//! The runner refuses fields it does not know (`deny_unknown_fields`): a stackctl newer than its
//! runner fails loudly instead of having a setting silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything `stackctl worker deploy` sends.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub routes: Vec<String>,
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// New or changed secrets; secrets deployed before and not named here are kept.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub db: Option<DbBinding>,
    /// Workflow bindings: binding name on `env` -> the exported class (which names the
    /// workflow). Left out when empty, so a runner that predates workflows takes the manifest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workflows: BTreeMap<String, String>,
}

/// Per-worker limits; `None` = the replica's default (stack.toml `[runner]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub cpu_ms: Option<i32>,
    pub memory_mb: Option<i32>,
    pub wall_ms: Option<i32>,
    pub body_bytes: Option<i32>,
    pub concurrency: Option<i32>,
}

/// `env.DB`: the postgate tenant the worker's own token is made for, and its permissions.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DbBinding {
    pub tenant: String,
    /// e.g. `["SELECT", "INSERT"]`.
    pub permissions: Vec<String>,
}

impl Manifest {
    /// The manifest as the runner reads it: one line of JSON, ending in a newline (the runner
    /// reads one line and need not wait for the end of stdin).
    pub fn to_line(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        Ok(line)
    }

    /// The manifest of one line [`Manifest::to_line`] wrote.
    pub fn from_line(line: &str) -> Result<Manifest, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// What a deploy did: the runner's answer on stdout, one JSON line.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Deployed {
    pub name: String,
    pub version: i32,
    pub secrets: Vec<String>,
    /// `Some(true)` when a new postgate token was made for the worker.
    pub db_token_created: Option<bool>,
    /// The manifest matched the deployed version: nothing was written.
    pub unchanged: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_one_line_that_reads_back_the_same() {
        let mut m = Manifest::from_line(r#"{"name":"hello","source":"export default {}"}"#)
            .expect("the smallest manifest");
        m.vars.insert("A".into(), "1\n2".into());
        m.limits.cpu_ms = Some(20);
        m.db = Some(DbBinding {
            tenant: "shop".into(),
            permissions: vec!["SELECT".into()],
        });
        let line = m.to_line().unwrap();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        assert_eq!(
            Manifest::from_line(std::str::from_utf8(&line).unwrap()).unwrap(),
            m
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(Manifest::from_line(r#"{"name":"a","source":"","x":1}"#).is_err());
        assert!(Manifest::from_line(r#"{"name":"a","source":"","limits":{"cpu":1}}"#).is_err());
    }
}
