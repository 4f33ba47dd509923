//! `stackctl render --target swarm`: the stack file `docker stack config` accepts, read back for
//! what Swarm needs (`deploy:` everywhere, the database pinned, overlay networks, the migrate job)
//! and for what it must not hold (`depends_on`, `restart`, a secret value in any environment).

use std::collections::BTreeSet;
use std::process::Command;

use serde_yaml::Value;

use super::read::services;
use super::stack;
use crate::support::{Stackctl, mode, yget, ystr};

const SWARM_FILE: &str = "swarm/code/docker-stack.yml";

/// `docker stack config -c FILE` (the Docker CLI's own loader for `docker stack deploy`).
fn stack_config_ok(s: &Stackctl, file: &str) {
    let out = Command::new("docker")
        .current_dir(s.path())
        .args(["stack", "config", "-c", file])
        .output()
        .expect("running docker stack config (the Docker CLI must be installed)");
    assert!(
        out.status.success(),
        "docker stack config rejected {file}:\n{}\n--- file\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.read(file)
    );
}

fn deploy<'a>(svc: &'a Value, name: &str) -> &'a Value {
    svc.get("deploy")
        .unwrap_or_else(|| panic!("service {name} has no deploy:"))
}

#[test]
fn swarm_file_passes_docker_stack_config_with_each_pooler() {
    for pooler in ["pgbouncer", "pgcat"] {
        let s = stack(pooler);
        s.write(
            "db/migrations/V1__notes.sql",
            "create table notes (id int);\n",
        );
        s.edit(
            "stack.toml",
            "traefik_network = \"\"",
            "traefik_network = \"dokploy-network\"",
        );
        s.edit(
            "stack.toml",
            "encrypted_network = false",
            "encrypted_network = true",
        );
        s.cmd(["render", "--target", "swarm"]).run().success();
        stack_config_ok(&s, SWARM_FILE);
        check_swarm_rules(&s, pooler);
    }
}

fn check_swarm_rules(s: &Stackctl, pooler: &str) {
    let text = s.read(SWARM_FILE);
    let doc = s.yaml(SWARM_FILE);
    let env = s.env_values();

    // No secret value anywhere in the stack file (environments included).
    for (k, v) in &env {
        assert!(
            !text.contains(v.as_str()),
            "the value of {k} is in the stack file"
        );
    }
    assert!(
        !text.contains("${"),
        "docker stack deploy reads no .env: no ${{VAR}} may remain"
    );

    let services = services(&doc);
    for (name, svc) in &services {
        for key in ["depends_on", "restart", "container_name", "build"] {
            assert!(svc.get(key).is_none(), "{name} has {key}: Swarm ignores it");
        }
        let d = deploy(svc, name);
        assert!(
            yget(d, "labels.dev.stackctl.group").is_some() || d.get("labels").is_some(),
            "{name}: no deploy.labels"
        );
        if name == "migrate" {
            assert_eq!(d.get("mode").map(ystr).as_deref(), Some("replicated-job"));
            continue;
        }
        assert_eq!(
            yget(d, "update_config.failure_action").map(ystr).as_deref(),
            Some("rollback"),
            "{name}"
        );
        assert!(
            yget(d, "update_config.monitor").is_some(),
            "{name}: no monitor"
        );
        assert!(
            d.get("rollback_config").is_some(),
            "{name}: no rollback_config"
        );
        assert!(
            d.get("restart_policy").is_some(),
            "{name}: no restart_policy"
        );
        let pinned = ["postgres", "backup"].contains(&name.as_str());
        // The database's volume holders stop before their successor starts; the rest overlap.
        let order = if pinned { "stop-first" } else { "start-first" };
        assert_eq!(
            yget(d, "update_config.order").map(ystr).as_deref(),
            Some(order),
            "{name}"
        );
        let constraints: Vec<String> = yget(d, "placement.constraints")
            .and_then(Value::as_sequence)
            .map(|l| l.iter().map(ystr).collect())
            .unwrap_or_default();
        assert_eq!(
            constraints.contains(&"node.labels.stackctl.postgres == true".to_string()),
            pinned,
            "{name}: placement {constraints:?}"
        );

        // Every *_FILE variable names a secret the service mounts; no .env value in the env.
        let mounted: BTreeSet<String> = svc
            .get("secrets")
            .and_then(Value::as_sequence)
            .map(|l| {
                l.iter()
                    .map(|x| match x {
                        Value::String(s) => s.clone(),
                        m => ystr(m.get("source").expect("secret source")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(Value::Mapping(e)) = svc.get("environment") {
            for (k, v) in e {
                let (k, v) = (ystr(k), ystr(v));
                assert!(
                    !env.values().any(|s| v.contains(s.as_str())),
                    "{name}: {k} holds a secret"
                );
                if let Some(secret) = v.strip_prefix("/run/secrets/") {
                    assert!(k.ends_with("_FILE"), "{name}: {k}");
                    assert!(
                        mounted.contains(secret),
                        "{name}: {k} names {secret}, not mounted"
                    );
                }
            }
        }
    }

    // Replicas from stack.toml.
    assert_eq!(
        yget(&services["runner"], "deploy.replicas")
            .map(ystr)
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        yget(&services["postgate"], "deploy.replicas")
            .map(ystr)
            .as_deref(),
        Some("2")
    );
    // Alloy reads each node's Docker socket: one per node.
    assert_eq!(
        yget(&services["alloy"], "deploy.mode").map(ystr).as_deref(),
        Some("global")
    );

    // Overlay networks: the stack's own attachable (and encrypted, as asked); Traefik's external.
    assert_eq!(
        yget(&doc, "networks.stack.driver").map(ystr).as_deref(),
        Some("overlay")
    );
    assert_eq!(
        yget(&doc, "networks.stack.attachable"),
        Some(&Value::Bool(true))
    );
    assert!(yget(&doc, "networks.stack.driver_opts.encrypted").is_some());
    assert_eq!(
        yget(&doc, "networks.dokploy-network.external"),
        Some(&Value::Bool(true))
    );

    // Routed services: Traefik's labels under deploy.labels (the Swarm provider reads those).
    for (svc, port) in [
        ("postgate", "8080"),
        ("runner", "8787"),
        ("grafana", "3000"),
    ] {
        let labels = yget(&services[svc], "deploy.labels")
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("{svc}: deploy.labels"));
        let get = |k: &str| labels.get(Value::String(k.to_string())).map(ystr);
        assert_eq!(get("traefik.enable").as_deref(), Some("true"), "{svc}");
        assert_eq!(
            get("traefik.swarm.network").as_deref(),
            Some("dokploy-network")
        );
        assert_eq!(
            get(&format!(
                "traefik.http.services.shop-{svc}.loadbalancer.server.port"
            ))
            .as_deref(),
            Some(port)
        );
        assert!(
            services[svc]
                .get("labels")
                .and_then(|l| l.get("traefik.enable"))
                .is_none()
        );
    }

    // The pooler's files with passwords are secrets, not configs.
    let configs = yget(&doc, "configs").and_then(Value::as_mapping).unwrap();
    let secrets = yget(&doc, "secrets").and_then(Value::as_mapping).unwrap();
    let secret_file = if pooler == "pgbouncer" {
        "pgbouncer_userlist"
    } else {
        "pgcat_toml"
    };
    assert!(secrets.contains_key(secret_file) && !configs.contains_key(secret_file));
    assert!(
        secrets.contains_key("postgres_server_key") && !configs.contains_key("postgres_server_key")
    );
    // Every .env secret is a Swarm secret, its file 0600 beside the stack file.
    for k in env.keys() {
        let x = secrets
            .get(k.as_str())
            .unwrap_or_else(|| panic!("{k} is not a Swarm secret"));
        let file = ystr(x.get("file").unwrap());
        let path = s.file("swarm/code").join(&file);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), env[k], "{file}");
        assert_eq!(mode(&path), 0o600, "{file}");
        assert!(ystr(x.get("name").unwrap()).starts_with("shop_"), "{k}");
    }
    // Each migration is a config mounted into the job.
    assert!(configs.contains_key("migration_V1__notes_sql"));
    assert!(text.contains("target: /migrations/V1__notes.sql"));
}

#[test]
fn a_rotated_secret_gets_a_new_swarm_name_and_the_others_keep_theirs() {
    let s = stack("pgbouncer");
    s.cmd(["render", "--target", "swarm"]).run().success();
    let before = s.yaml(SWARM_FILE);
    s.cmd(["init", "--rotate", "JWT_SECRET"]).run().success();
    s.cmd(["render", "--target", "swarm"]).run().success();
    let after = s.yaml(SWARM_FILE);
    let name = |doc: &Value, k: &str| ystr(yget(doc, &format!("secrets.{k}.name")).unwrap());
    assert_ne!(name(&before, "JWT_SECRET"), name(&after, "JWT_SECRET"));
    assert_eq!(
        name(&before, "POSTGRES_PASSWORD"),
        name(&after, "POSTGRES_PASSWORD")
    );
}

#[test]
fn the_local_and_dokploy_files_are_not_touched_by_the_swarm_settings() {
    let s = stack("pgbouncer");
    s.cmd(["render", "--target", "local"]).run().success();
    s.cmd(["render", "--target", "dokploy"]).run().success();
    let (local, dokploy) = (s.read("docker-compose.yml"), s.read(super::DOKPLOY_FILE));
    s.edit(
        "stack.toml",
        "postgate_replicas = 2",
        "postgate_replicas = 5",
    );
    s.edit("stack.toml", "runner_port = 0", "runner_port = 18787");
    s.cmd(["render", "--target", "local"]).run().success();
    s.cmd(["render", "--target", "dokploy"]).run().success();
    assert_eq!(local, s.read("docker-compose.yml"));
    assert_eq!(dokploy, s.read(super::DOKPLOY_FILE));
    assert!(!local.contains("/run/secrets/") && !local.contains("node.labels"));
}
