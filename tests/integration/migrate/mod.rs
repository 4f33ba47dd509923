//! `stackctl migrate` against a real PostgreSQL 17 (a container of our image): idempotence,
//! concurrency, failures, edited files, the privilege matrix, password rotation, and the Dokploy
//! path. This module holds what every scenario uses: a stack directory, a run, its status.

mod dokploy;
mod failures;
mod roles;
mod runs;

use crate::support::{Postgres, Stackctl};

/// A stack directory with `.env` written by `stackctl init`.
fn stack() -> Stackctl {
    let s = Stackctl::new();
    s.cmd(["init"]).run().success();
    s
}

fn env_value(s: &Stackctl, key: &str) -> String {
    s.read(".env")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("{key} not in .env"))
}

fn migrate(s: &Stackctl, pg: &Postgres) -> crate::support::Done {
    s.cmd(["migrate", "--database-url", &pg.url()]).run()
}

fn status_json(s: &Stackctl, pg: &Postgres) -> serde_json::Value {
    let out = s
        .cmd(["migrate", "status", "--json", "--database-url", &pg.url()])
        .run()
        .success();
    serde_json::from_str(&out.stdout())
        .unwrap_or_else(|e| panic!("status --json: {e}\n{}", out.stdout()))
}

fn states(v: &serde_json::Value, set: &str) -> Vec<(i64, String)> {
    v[set]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["version"].as_i64().unwrap(),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// How many platform migrations the binary embeds: the `V*.sql` files of `migrations/`.
fn platform_count() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations/")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with('V') && n.ends_with(".sql")
        })
        .count()
}
