//! The config files `render` writes for Loki, Alloy, Grafana and the pooler, parsed with real
//! parsers and checked against their documented schema (shared/FACTS.md): the values that
//! matter, and that they agree with stack.toml, .env and the Compose file that mounts them.
//!
//! This module holds the rendered stack and how the Compose file mounts a config;
//! `observability` and `pooler` are the scenarios, `scram` checks a stored verifier.

mod observability;
mod pooler;
mod scram;

use serde_yaml::Value;

use crate::support::{Stackctl, ystr};

const DOKPLOY_FILE: &str = "dokploy/code/docker-compose.yml";

/// The logins that go through the pooler, by their `.env` key. This mirrors `secrets::SECRETS`
/// (`pooled: true`) on purpose: if the product's list changes, this test must be changed too.
const POOLED: [(&str, &str); 4] = [
    ("AUTHENTICATOR_PASSWORD", "db_authenticator"),
    ("POSTGATE_DB_PASSWORD", "postgate"),
    ("RUNNER_DB_PASSWORD", "runner"),
    ("APP_DB_PASSWORD", "app"),
];

/// A stack with non-default database, pool sizes and retention, rendered for Dokploy.
fn rendered(pooler: &str) -> Stackctl {
    let s = Stackctl::new();
    s.cmd(["init", "--pooler", pooler]).run().success();
    s.edit("stack.toml", "database = \"app\"", "database = \"shop\"");
    s.edit("stack.toml", "pool_size = 20", "pool_size = 17");
    s.edit("stack.toml", "min_pool_size = 2", "min_pool_size = 3");
    s.edit(
        "stack.toml",
        "max_client_conn = 1000",
        "max_client_conn = 700",
    );
    s.edit(
        "stack.toml",
        "pool_mode = \"transaction\"",
        "pool_mode = \"session\"",
    );
    s.edit(
        "stack.toml",
        "log_retention = \"744h\"",
        "log_retention = \"336h\"",
    );
    s.cmd(["render"]).run().success();
    s
}

/// The Compose service `name` of the rendered Dokploy file.
fn service(s: &Stackctl, name: &str) -> Value {
    s.yaml(DOKPLOY_FILE)["services"][name].clone()
}

/// Where the Compose file mounts the config named `source` in service `svc`, and the file it
/// comes from (relative to the stack directory).
fn config_mount(s: &Stackctl, svc: &str, source: &str) -> (String, String) {
    let doc = s.yaml(DOKPLOY_FILE);
    let target = doc["services"][svc]["configs"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{svc} has no configs"))
        .iter()
        .find(|c| c["source"].as_str() == Some(source))
        .unwrap_or_else(|| panic!("{svc} does not mount {source}"))["target"]
        .as_str()
        .unwrap()
        .to_string();
    let file = ystr(&doc["configs"][source]["file"]);
    let rel = file
        .strip_prefix("../files/")
        .expect("config from ../files/")
        .to_string();
    // The copy Dokploy mounts is the file render wrote in the stack directory.
    assert_eq!(
        s.read(&format!("dokploy/files/{rel}")),
        s.read(&rel),
        "dokploy/files/{rel} differs from {rel}"
    );
    (target, rel)
}
