//! A tag the registry already holds with other content: refused unless `--force`.

use std::io::Write;
use std::process::{Command, Stdio};

use super::fixtures::{Images, Project, image_id};
use super::registry::Registry;
use crate::support::{assert_unchanged, docker};

/// A tag the registry holds with other content is refused (nothing pushed, stack.toml as it
/// was) unless `--force`, which replaces it.
#[test]
fn a_tag_with_different_content_is_refused_unless_force() {
    let reg = Registry::start(None);
    let prefix = format!("stackctl-pubtest-{}-force", std::process::id());
    let (one, two) = (
        format!("{prefix}-a/postgres:1"),
        format!("{prefix}-b/postgres:1"),
    );
    let remote = format!("{}/force/postgres:t1", reg.host());
    let _cleanup = Images(vec![one.clone(), two.clone(), remote.clone()]);
    // Two different images, neither carrying our build label (so used as they are): the base
    // and the base with one more label.
    docker(&["tag", "debian:trixie-slim", &one]);
    let mut build = Command::new("docker");
    build
        .args(["build", "-t", &two, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = build.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM debian:trixie-slim\nLABEL dev.stackctl.pubtest=second\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "docker build: {out:?}");
    assert_ne!(image_id(&one), image_id(&two));

    let p = Project::new("f");
    let registry = format!("{}/force", reg.host());
    p.set_image("postgres", &one);
    // Every publish of `p` sends postgres under the tag t1.
    let publish = |flags: &[&str]| {
        p.publish(&registry, &["--tag", "t1"])
            .args(flags)
            .args(&["postgres"])
    };
    publish(&[]).run().success();
    assert_eq!(
        reg.config_digest("force/postgres", "t1"),
        Some(image_id(&one))
    );

    p.set_image("postgres", &two);
    let before = p.s.snapshot();
    let refused = publish(&[])
        .run()
        .failure()
        .stderr_contains(&format!(
            "the registry {} already has 1 of these tags with different content",
            reg.host()
        ))
        .stderr_contains(&remote)
        .stderr_contains("hint:")
        .stderr_contains("--force");
    println!(
        "refused: {}",
        refused
            .stderr()
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap()
    );
    assert_unchanged(&before, &p.s.snapshot());
    assert_eq!(
        reg.config_digest("force/postgres", "t1"),
        Some(image_id(&one)),
        "the refused publish changed the registry"
    );

    publish(&["--force"])
        .run()
        .success()
        .stderr_contains("--force: replacing");
    assert_eq!(
        reg.config_digest("force/postgres", "t1"),
        Some(image_id(&two))
    );
    assert_eq!(p.image("postgres"), remote);
}
