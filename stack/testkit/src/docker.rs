//! The `docker` command line, as the tests drive it: one call that must succeed, and one
//! question (is this image here?).

use std::process::Command;

/// `docker ARGS` that must succeed; its trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running docker {args:?} failed (is Docker installed?): {e}"));
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether the Docker Engine has an image tagged `tag`.
pub fn image_exists(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", tag])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails the test loudly when the Docker Engine cannot be reached: tests that need Docker never
/// pass by skipping.
pub fn require_docker() {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs a running Docker Engine (`docker info` failed); see README, section Tests"
    );
}
