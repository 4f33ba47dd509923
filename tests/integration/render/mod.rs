//! `stackctl render`: the Compose file passes `docker compose config`, and the Dokploy file keeps
//! every rule Dokploy sets (see shared/FACTS.md, "Dokploy"), read back from the rendered YAML.
//!
//! This module holds the stack every scenario renders and the `docker compose config` check;
//! `read` reads a rendered Compose file back; `compose` and `dokploy` are the scenarios.

mod compose;
mod dokploy;
mod read;
mod swarm;

use crate::support::{Stackctl, compose_v2};

const DOKPLOY_FILE: &str = "dokploy/code/docker-compose.yml";
const LOCAL_FILE: &str = "docker-compose.yml";

/// A stack whose domains are not the defaults, so the test sees they come from stack.toml.
fn stack(pooler: &str) -> Stackctl {
    let s = Stackctl::new();
    s.cmd([
        "init",
        "--project",
        "shop",
        "--domain",
        "example.com",
        "--pooler",
        pooler,
    ])
    .run()
    .success();
    s.edit(
        "stack.toml",
        "grafana = \"\"",
        "grafana = \"logs.example.org\"",
    );
    s
}

/// `docker compose -f FILE --env-file .env config -q` in the stack directory.
fn compose_config_ok(s: &Stackctl, file: &str) {
    let out = compose_v2()
        .current_dir(s.path())
        .args(["-f", file, "--env-file", ".env", "config", "-q"])
        .output()
        .expect("running docker compose");
    assert!(
        out.status.success(),
        "docker compose config rejected {file}:\n{}\n--- file\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.read(file)
    );
}
