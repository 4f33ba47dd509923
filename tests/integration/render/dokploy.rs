//! Every rule Dokploy sets for a Compose file (see shared/FACTS.md, "Dokploy"), checked on the
//! rendered Dokploy file with each pooler.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use super::read::{interpolated_vars, labels, networks, services, volumes};
use super::{DOKPLOY_FILE, stack};
use crate::support::{Stackctl, yget, ystr};

const ROUTED: [(&str, &str); 3] = [
    ("grafana", "3000"),
    ("postgate", "8080"),
    ("runner", "8787"),
];

#[test]
fn dokploy_file_keeps_every_dokploy_rule() {
    for pooler in ["pgcat", "pgbouncer"] {
        let s = stack(pooler);
        s.cmd(["render", "--target", "dokploy"]).run().success();
        let text = s.read(DOKPLOY_FILE);
        let doc = s.yaml(DOKPLOY_FILE);
        check_dokploy_rules(&s, pooler, &text, &doc);
    }
}

fn check_dokploy_rules(s: &Stackctl, pooler: &str, text: &str, doc: &Value) {
    // Top level: no `version:`; only the keys we mean.
    let top: BTreeSet<String> = doc.as_mapping().unwrap().keys().map(ystr).collect();
    assert!(!top.contains("version"), "`version:` is obsolete");
    for k in &top {
        assert!(
            ["name", "services", "networks", "volumes", "configs"].contains(&k.as_str()),
            "unexpected top-level key {k}"
        );
    }
    assert_eq!(yget(doc, "name").map(ystr).as_deref(), Some("shop"));

    let services = services(doc);
    let mut expected: BTreeSet<&str> = [
        "postgres",
        "migrate",
        "backup",
        pooler,
        "postgate",
        "runner",
        "loki",
        "alloy",
        "grafana",
        "prometheus",
        "postgres-exporter",
    ]
    .into();
    if pooler == "pgbouncer" {
        expected.insert("pgbouncer-exporter");
    }
    assert_eq!(
        services.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected
    );

    // Networks: `dokploy-network` is external; the stack's own network is not.
    assert_eq!(
        yget(doc, "networks.dokploy-network.external"),
        Some(&Value::Bool(true))
    );
    assert_ne!(
        yget(doc, "networks.stack.external"),
        Some(&Value::Bool(true))
    );

    let named_volumes: BTreeSet<String> = doc
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().map(ystr).collect())
        .unwrap_or_default();
    let mut absolute = Vec::new();
    let hosts: BTreeMap<&str, &str> = [
        ("grafana", "logs.example.org"),
        ("postgate", "postgate.example.com"),
        ("runner", "runner.example.com"),
    ]
    .into();

    for (name, svc) in &services {
        let m = svc.as_mapping().unwrap();
        assert!(
            !m.contains_key("container_name"),
            "{name}: container_name breaks Dokploy's monitoring"
        );
        assert!(
            !m.contains_key("ports"),
            "{name}: no host port bindings on Dokploy"
        );
        for (src, dst) in volumes(svc) {
            if src.starts_with('/') {
                absolute.push((name.clone(), src.clone(), dst.clone()));
            } else if !named_volumes.contains(&src) {
                assert!(
                    src.starts_with("../files/"),
                    "{name}: volume {src} is neither named nor under ../files/"
                );
            }
        }

        // Images: pinned to a tag (not `latest`).
        let image = ystr(svc.get("image").expect("image"));
        let last = image.rsplit('/').next().unwrap();
        let tag = last
            .split_once(':')
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("{name}: image {image} has no tag"));
        assert!(
            !tag.is_empty() && tag != "latest",
            "{name}: image {image} is not pinned"
        );

        // Health: every long-running service has a healthcheck; the one-off job does not run forever.
        let one_off = name == "migrate";
        if one_off {
            assert_eq!(
                svc.get("restart").map(ystr).as_deref(),
                Some("no"),
                "migrate must not restart"
            );
        } else {
            let test = svc
                .get("healthcheck")
                .and_then(|h| h.get("test"))
                .unwrap_or_else(|| panic!("{name}: no healthcheck"));
            assert!(
                test.as_sequence()
                    .is_some_and(|l| l.len() > 1 && ystr(&l[0]) != "NONE"),
                "{name}: healthcheck {test:?}"
            );
            assert_ne!(
                svc.get("healthcheck").and_then(|h| h.get("disable")),
                Some(&Value::Bool(true))
            );
        }

        // depends_on: always with a condition, and each condition is one the target can meet.
        if let Some(deps) = svc.get("depends_on") {
            let deps = deps
                .as_mapping()
                .unwrap_or_else(|| panic!("{name}: depends_on must be a map with conditions"));
            for (dep, spec) in deps {
                let dep = ystr(dep);
                let cond = spec
                    .get("condition")
                    .map(ystr)
                    .unwrap_or_else(|| panic!("{name} -> {dep}: no condition"));
                let target = services
                    .get(&dep)
                    .unwrap_or_else(|| panic!("{name} depends on unknown {dep}"));
                match cond.as_str() {
                    "service_healthy" => assert!(
                        target.get("healthcheck").is_some(),
                        "{name} waits for {dep}'s health, which has none"
                    ),
                    "service_completed_successfully" => {
                        assert_eq!(dep, "migrate", "{name} waits for {dep} to exit")
                    }
                    "service_started" => {}
                    other => panic!("{name} -> {dep}: unknown condition {other}"),
                }
            }
        }

        // Traefik: routed services only.
        let l = labels(svc);
        let nets = networks(svc);
        if let Some((_, port)) = ROUTED.iter().find(|(r, _)| r == name) {
            assert_eq!(
                nets,
                ["dokploy-network".to_string(), "stack".to_string()].into(),
                "{name}"
            );
            assert_eq!(
                l.get("traefik.enable").map(String::as_str),
                Some("true"),
                "{name}"
            );
            assert_eq!(
                l.get("traefik.docker.network").map(String::as_str),
                Some("dokploy-network"),
                "{name}"
            );
            let routers: BTreeSet<&str> = l
                .keys()
                .filter_map(|k| {
                    k.strip_prefix("traefik.http.routers.")?
                        .split_once('.')
                        .map(|(r, _)| r)
                })
                .collect();
            assert!(!routers.is_empty(), "{name}: no router");
            for r in &routers {
                let get = |k: &str| {
                    l.get(&format!("traefik.http.routers.{r}.{k}"))
                        .map(String::as_str)
                };
                assert_eq!(get("entrypoints"), Some("websecure"), "{name}/{r}");
                assert_eq!(get("tls.certresolver"), Some("letsencrypt"), "{name}/{r}");
                let service = get("service").unwrap_or_else(|| panic!("{name}/{r}: no service"));
                assert_eq!(
                    l.get(&format!(
                        "traefik.http.services.{service}.loadbalancer.server.port"
                    ))
                    .map(String::as_str),
                    Some(*port),
                    "{name}/{r}: loadbalancer port"
                );
            }
            let host_rule = format!("Host(`{}`)", hosts[name.as_str()]);
            assert!(
                routers
                    .iter()
                    .any(|r| l.get(&format!("traefik.http.routers.{r}.rule")) == Some(&host_rule)),
                "{name}: no router with {host_rule}: {l:?}"
            );
            if name == "runner" {
                let wildcard = "HostRegexp(`^[a-z0-9-]+\\.workers\\.example\\.com$$`)";
                let r = routers
                    .iter()
                    .find(|r| {
                        l.get(&format!("traefik.http.routers.{r}.rule"))
                            .map(String::as_str)
                            == Some(wildcard)
                    })
                    .unwrap_or_else(|| {
                        panic!("runner: no wildcard workers router {wildcard}: {l:?}")
                    });
                assert_eq!(
                    l.get(&format!("traefik.http.routers.{r}.tls.domains[0].main"))
                        .map(String::as_str),
                    Some("*.workers.example.com")
                );
            }
        } else {
            assert_eq!(
                nets,
                ["stack".to_string()].into(),
                "{name} must sit only on the internal network"
            );
            assert!(
                l.keys().all(|k| !k.starts_with("traefik.")),
                "{name} is not routed but has Traefik labels"
            );
        }
    }

    // The only absolute path: the Docker socket, for Alloy, read-only use.
    assert_eq!(
        absolute,
        vec![(
            "alloy".to_string(),
            "/var/run/docker.sock".to_string(),
            "/var/run/docker.sock".to_string()
        )]
    );

    // Config files come from Dokploy's file mounts.
    for (name, c) in doc
        .get("configs")
        .and_then(Value::as_mapping)
        .expect("configs")
    {
        let file = ystr(c.get("file").expect("file"));
        assert!(
            file.starts_with("../files/"),
            "config {}: {file}",
            ystr(name)
        );
        assert!(
            s.file("dokploy/code").join(&file).exists(),
            "config {} points at a missing {file}",
            ystr(name)
        );
    }

    // The services that use the database wait for the migrations to have run.
    for name in [pooler, "postgate", "runner"] {
        assert_eq!(
            yget(&services[name], "depends_on.migrate.condition")
                .map(ystr)
                .as_deref(),
            Some("service_completed_successfully"),
            "{name} must wait for migrate"
        );
    }
    assert_eq!(
        yget(&services["migrate"], "depends_on.postgres.condition")
            .map(ystr)
            .as_deref(),
        Some("service_healthy")
    );
    // Postgres cannot wait for the job that needs it; logging must not wait for it either (it
    // has to capture a failing migration's logs).
    for name in ["postgres", "loki", "alloy", "grafana"] {
        assert!(
            yget(&services[name], "depends_on.migrate").is_none(),
            "{name} must not wait for migrate"
        );
    }

    assert_eq!(
        yget(&services["runner"], "deploy.replicas")
            .map(ystr)
            .as_deref(),
        Some("3")
    );

    // Secrets: no value of .env anywhere in the file; every `$` is interpolation of a .env key.
    let env = s.env_values();
    assert!(env.len() >= 10);
    for (k, v) in &env {
        assert!(v.len() >= 16, "{k} is suspiciously short");
        assert!(
            !text.contains(v.as_str()),
            "the value of {k} leaked into the Compose file"
        );
    }
    let vars = interpolated_vars(text);
    assert!(
        vars.contains("POSTGRES_PASSWORD") && vars.contains("GRAFANA_ADMIN_PASSWORD"),
        "{vars:?}"
    );
    // Optional keys (with a `:-` default in the file) are written to .env only when needed.
    let optional = ["RUNNER_SECRETS_KEY_PREVIOUS"];
    for v in &vars {
        assert!(
            env.contains_key(v) || optional.contains(&v.as_str()),
            "${{{v}}} is not a key of .env"
        );
    }
    for o in optional {
        assert!(
            text.contains(&format!("${{{o}:-}}")),
            "{o} must have a default in the Compose file"
        );
    }
}
