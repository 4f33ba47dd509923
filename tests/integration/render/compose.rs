//! The rendered Compose files as Compose reads them: both targets pass `docker compose config`,
//! images, replicas and ports follow stack.toml, the local file publishes on loopback only and
//! still finds its files when written elsewhere.

use serde_yaml::Value;

use super::read::{interpolated_vars, networks, services};
use super::{DOKPLOY_FILE, LOCAL_FILE, compose_config_ok, stack};
use crate::support::{compose_v2, yget, ystr};

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
