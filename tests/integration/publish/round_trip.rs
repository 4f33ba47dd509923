//! The round trip: publish our images, publish again (nothing uploaded), and a fresh project
//! that pulls them.

use super::fixtures::{Images, Project, image_id, json};
use super::registry::Registry;
use crate::support::{docker, image_exists};

/// Publish our images, check the OCI labels and `[images]`, publish again (no new layer), remove
/// every local copy, and bring up a fresh project that pulls them and becomes healthy.
#[test]
fn publish_then_a_fresh_project_pulls_and_a_second_publish_uploads_nothing() {
    let reg = Registry::start(None);
    let prefix = format!("stackctl-pubtest-{}-rt", std::process::id());
    let names = ["postgres", "pgbouncer", "stackctl"];
    let local: Vec<String> = ["postgres:17", "pgbouncer:1.24", "stackctl:1"]
        .iter()
        .map(|t| format!("{prefix}/{t}"))
        .collect();
    let remote: Vec<String> = ["postgres:17", "pgbouncer:1.24", "stackctl:1"]
        .iter()
        .map(|t| format!("{}/rt/{t}", reg.host()))
        .collect();
    let _cleanup = Images(local.iter().chain(&remote).cloned().collect());

    let a = Project::new("a");
    for (n, l) in names.iter().zip(&local) {
        a.set_image(n, l);
    }
    let registry = format!("{}/rt", reg.host());
    // Every publish of `a` names the three images.
    let publish = |flags: &[&str]| a.publish(&registry, flags).args(&names);
    // Not built yet: publish builds them first.
    let first = publish(&["--json"]).run().success();
    let report = json(&first);
    assert!(first.stderr().contains("building"), "{}", first.stderr());
    assert!(report["layers_pushed"].as_u64().unwrap() > 0, "{report}");
    for (i, r) in remote.iter().enumerate() {
        let img = &report["images"][i];
        assert_eq!(img["reference"], r.as_str());
        assert!(
            img["digest"].as_str().unwrap().starts_with("sha256:"),
            "{img}"
        );
        // The registry holds the local image: its config digest is the image id.
        let (repo, tag) = r
            .strip_prefix(&format!("{}/", reg.host()))
            .unwrap()
            .split_once(':')
            .unwrap();
        assert_eq!(
            reg.config_digest(repo, tag).as_deref(),
            Some(image_id(r).as_str())
        );
        // [images] points at the registry.
        assert_eq!(a.image(names[i]), *r);
    }
    // Only those keys changed: comments and the other images stay.
    let toml_text = a.s.read("stack.toml");
    assert!(toml_text.contains("[images]                     # every image, pinned"));
    assert!(toml_text.contains("pgcat = \"ghcr.io/postgresml/pgcat:v1.2.0\""));

    // The OCI labels.
    let labels: serde_json::Value = serde_json::from_str(&docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &remote[0],
    ]))
    .unwrap();
    println!("labels of {}: {labels}", remote[0]);
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let created = labels["org.opencontainers.image.created"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    for (label, value) in [
        (
            "org.opencontainers.image.revision",
            env!("STACKCTL_REVISION"),
        ),
        ("org.opencontainers.image.source", env!("STACKCTL_SOURCE")),
    ] {
        if value.is_empty() {
            assert!(labels.get(label).is_none(), "{labels}");
        } else {
            assert_eq!(labels[label], value, "{labels}");
        }
    }

    // Both render targets use the published references.
    a.s.cmd(["render", "--target", "dokploy"]).run().success();
    a.s.cmd(["render", "--target", "local"]).run().success();
    for f in ["dokploy/code/docker-compose.yml", "docker-compose.yml"] {
        let text = a.s.read(f);
        for r in &remote {
            assert!(text.contains(&format!("image: {r}")), "{f} lacks {r}");
        }
    }

    // Unchanged images: the second publish uploads no layer.
    let second = publish(&["--json"]).run().success();
    let again = json(&second);
    println!(
        "second publish: layers_pushed={} stack_toml_updated={}",
        again["layers_pushed"], again["stack_toml_updated"]
    );
    assert_eq!(again["layers_pushed"], 0, "{again}");
    assert_eq!(again["stack_toml_updated"], false);
    for (i, img) in again["images"].as_array().unwrap().iter().enumerate() {
        assert!(img["layers_existing"].as_u64().unwrap() > 0, "{img}");
        assert_eq!(img["digest"], report["images"][i]["digest"]);
    }
    // The text form says the same.
    publish(&[])
        .run()
        .success()
        .stdout_contains("(layers: 0 pushed,")
        .stdout_contains("stack.toml [images] already referred to these images");

    // Nothing of them left on this machine.
    for t in local.iter().chain(&remote) {
        docker(&["rmi", t]);
        assert!(!image_exists(t), "{t} is still here");
    }

    // A fresh project that names them pulls them and becomes healthy.
    let b = Project::new("b");
    for (n, r) in names.iter().zip(&remote) {
        b.set_image(n, r);
    }
    let up =
        b.s.up_core(&["--wait-timeout", "180"])
            .run()
            .success()
            .stderr_contains("healthy");
    assert!(up.stderr().contains("pulling"), "{}", up.stderr());
    for (i, r) in remote.iter().enumerate() {
        let digests = docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", r]);
        let digest = report["images"][i]["digest"].as_str().unwrap();
        let repo = r.rsplit_once(':').unwrap().0;
        assert!(
            digests.contains(&format!("{repo}@{digest}")),
            "{r} was not pulled from the registry: {digests}"
        );
    }
    println!("fresh project pulled {} images and is up", remote.len());
}
