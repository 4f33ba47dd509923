//! `stackctl render`: the Compose file passes `docker compose config`, and the Dokploy file keeps
//! every rule Dokploy sets (see shared/FACTS.md, "Dokploy"), read back from the rendered YAML.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use crate::support::{Stackctl, compose_v2, yget, ystr};

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

#[test]
fn dokploy_file_passes_compose_config_with_each_pooler_and_without_observability() {
    for pooler in ["pgcat", "pgbouncer"] {
        let s = stack(pooler);
        s.cmd(["render", "--target", "dokploy"])
            .run()
            .success()
            .stdout_contains("rendered");
        compose_config_ok(&s, DOKPLOY_FILE);
        assert!(
            s.read(DOKPLOY_FILE).contains(&format!("\n  {pooler}:\n")),
            "{pooler} service missing"
        );

        s.edit("stack.toml", "enabled = true", "enabled = false");
        s.cmd(["render", "--target", "dokploy"]).run().success();
        compose_config_ok(&s, DOKPLOY_FILE);
        let services = services(&s.yaml(DOKPLOY_FILE));
        for gone in ["loki", "alloy", "grafana"] {
            assert!(
                !services.contains_key(gone),
                "{gone} rendered with observability off"
            );
        }
    }
}

#[test]
fn local_file_passes_compose_config() {
    for pooler in ["pgcat", "pgbouncer"] {
        let s = stack(pooler);
        s.cmd(["render", "--target", "local"]).run().success();
        compose_config_ok(&s, LOCAL_FILE);
    }
}

#[test]
fn render_prints_normalised_paths() {
    let s = stack("pgcat");
    let done = s.cmd(["render"]).run().success();
    assert!(!done.stdout().contains(".."), "{}", done.stdout());
    done.stdout_contains(&s.path().join("dokploy/files").display().to_string());
}

fn services(doc: &Value) -> BTreeMap<String, Value> {
    doc.get("services")
        .and_then(Value::as_mapping)
        .expect("services")
        .iter()
        .map(|(k, v)| (ystr(k), v.clone()))
        .collect()
}

/// Labels in either Compose form (map or `k=v` list).
fn labels(svc: &Value) -> BTreeMap<String, String> {
    match svc.get("labels") {
        None => BTreeMap::new(),
        Some(Value::Mapping(m)) => m.iter().map(|(k, v)| (ystr(k), ystr(v))).collect(),
        Some(Value::Sequence(l)) => l
            .iter()
            .map(|x| {
                let s = ystr(x);
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        Some(other) => panic!("labels: {other:?}"),
    }
}

/// Network names of a service (list or map form).
fn networks(svc: &Value) -> BTreeSet<String> {
    match svc.get("networks") {
        None => BTreeSet::new(),
        Some(Value::Sequence(l)) => l.iter().map(ystr).collect(),
        Some(Value::Mapping(m)) => m.keys().map(ystr).collect(),
        Some(other) => panic!("networks: {other:?}"),
    }
}

/// (source, target) of each volume of a service (short `src:dst[:mode]` or long form).
fn volumes(svc: &Value) -> Vec<(String, String)> {
    svc.get("volumes")
        .and_then(Value::as_sequence)
        .map(|l| {
            l.iter()
                .map(|v| match v {
                    Value::String(s) => {
                        let mut parts = s.splitn(3, ':');
                        (
                            parts.next().unwrap().to_string(),
                            parts.next().expect("volume without target").to_string(),
                        )
                    }
                    Value::Mapping(_) => (
                        ystr(v.get("source").expect("source")),
                        ystr(v.get("target").expect("target")),
                    ),
                    other => panic!("volume: {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that every `$` of a Compose text is `${VAR...}` interpolation or the `$$` escape, and
/// returns the interpolated variable names.
fn interpolated_vars(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut vars = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            if b.get(i + 1) == Some(&b'$') {
                i += 2;
                continue;
            }
            assert_eq!(
                b.get(i + 1),
                Some(&b'{'),
                "bare `$` at byte {i}: {:?}",
                &text[i..(i + 40).min(text.len())]
            );
            let name: String = text[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(!name.is_empty(), "`${{` without a variable at byte {i}");
            let after = b[i + 2 + name.len()];
            assert!(
                matches!(after, b'}' | b':' | b'?' | b'-'),
                "malformed interpolation of {name}"
            );
            vars.insert(name);
            i += 2;
        } else {
            i += 1;
        }
    }
    vars
}

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
    let expected: BTreeSet<&str> = [
        "postgres", "migrate", pooler, "postgate", "runner", "loki", "alloy", "grafana",
    ]
    .into();
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

#[test]
fn images_and_replicas_follow_stack_toml() {
    let s = stack("pgcat");
    s.edit(
        "stack.toml",
        "loki = \"grafana/loki:3.7.0\"",
        "loki = \"mirror.example:5000/grafana/loki:3.7.9\"",
    );
    s.edit("stack.toml", "replicas = 3", "replicas = 5");
    s.cmd(["render"]).run().success();
    let doc = s.yaml(DOKPLOY_FILE);
    let services = services(&doc);
    assert_eq!(
        ystr(&services["loki"]["image"]),
        "mirror.example:5000/grafana/loki:3.7.9"
    );
    assert_eq!(
        yget(&services["runner"], "deploy.replicas")
            .map(ystr)
            .as_deref(),
        Some("5")
    );
    // Every image is overridable: each default from stack.toml is the one rendered.
    let toml: toml::Table = toml::from_str(&s.read("stack.toml")).unwrap();
    let images = toml["images"].as_table().unwrap();
    for (svc, key) in [
        ("postgres", "postgres"),
        ("migrate", "stackctl"),
        ("pgcat", "pgcat"),
        ("postgate", "postgate"),
        ("runner", "runner"),
        ("loki", "loki"),
        ("alloy", "alloy"),
        ("grafana", "grafana"),
    ] {
        assert_eq!(
            ystr(&services[svc]["image"]),
            images[key].as_str().unwrap(),
            "{svc}"
        );
    }
}

#[test]
fn local_file_publishes_on_loopback_only_with_ports_from_stack_toml() {
    for pooler in ["pgcat", "pgbouncer"] {
        let s = stack(pooler);
        for (from, to) in [
            ("postgres = 5432", "postgres = 15432"),
            ("pooler = 6432", "pooler = 16432"),
            ("postgate = 8080", "postgate = 18080"),
        ] {
            s.edit("stack.toml", from, to);
        }
        s.cmd(["render", "--target", "local"]).run().success();
        let text = s.read(LOCAL_FILE);
        for (k, v) in s.env_values() {
            assert!(
                !text.contains(&v),
                "the value of {k} leaked into the local Compose file"
            );
        }
        interpolated_vars(&text);
        let doc = s.yaml(LOCAL_FILE);
        let services = services(&doc);
        let ports = |name: &str| -> Vec<String> {
            services[name]
                .get("ports")
                .and_then(Value::as_sequence)
                .map(|l| l.iter().map(ystr).collect())
                .unwrap_or_default()
        };
        assert_eq!(ports("postgres"), ["127.0.0.1:15432:5432"]);
        assert_eq!(ports(pooler), ["127.0.0.1:16432:6432"]);
        assert_eq!(ports("postgate"), ["127.0.0.1:18080:8080"]);
        assert_eq!(
            ports("runner"),
            ["127.0.0.1::8787"],
            "runner replicas take ephemeral loopback ports"
        );
        for (name, svc) in &services {
            assert!(!networks(svc).contains("dokploy-network"), "{name}");
            for p in ports(name) {
                assert!(
                    p.starts_with("127.0.0.1:"),
                    "{name} publishes {p} beyond loopback"
                );
            }
        }
        assert!(yget(&doc, "networks.dokploy-network").is_none());

        // The same, as Compose itself understands it.
        let out = compose_v2()
            .current_dir(s.path())
            .args([
                "-f",
                LOCAL_FILE,
                "--env-file",
                ".env",
                "config",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for (name, published) in [
            ("postgres", "15432"),
            (pooler, "16432"),
            ("postgate", "18080"),
            ("runner", ""),
        ] {
            let p = &json["services"][name]["ports"][0];
            assert_eq!(p["host_ip"], "127.0.0.1", "{name}: {p}");
            assert_eq!(
                p["published"].as_str().unwrap_or(""),
                published,
                "{name}: {p}"
            );
        }
    }
}

#[test]
fn interpolation_check_catches_bare_dollars() {
    assert_eq!(
        interpolated_vars("a: ${X:?m} b: $$x"),
        ["X".to_string()].into()
    );
    assert!(std::panic::catch_unwind(|| interpolated_vars("rule: 'a$`'")).is_err());
}

#[test]
fn local_file_written_elsewhere_still_finds_the_stack_files() {
    let s = stack("pgbouncer");
    let elsewhere = tempfile::tempdir().unwrap();
    let out = elsewhere.path().join("compose.yml");
    s.cmd([
        "render",
        "--target",
        "local",
        "--output",
        out.to_str().unwrap(),
    ])
    .run()
    .success();
    let text = std::fs::read_to_string(&out).unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    for (name, c) in doc["configs"].as_mapping().unwrap() {
        let file = ystr(&c["file"]);
        assert!(
            elsewhere.path().join(&file).is_file(),
            "config {} points at a missing {file}",
            ystr(name)
        );
    }
    let out = compose_v2()
        .current_dir(elsewhere.path())
        .args(["-f", "compose.yml", "--env-file"])
        .arg(s.file(".env"))
        .args(["config", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
