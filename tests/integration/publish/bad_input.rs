//! Publish input refused before any registry is asked, and a registry that does not answer.

use crate::support::{Stackctl, assert_unchanged, free_port};

/// Bad input that needs no registry at all, and a registry that does not answer: a clear error
/// with a hint, a non-zero exit, nothing written.
#[test]
fn malformed_registry_bad_tag_and_unreachable_registry_change_nothing() {
    let s = Stackctl::new();
    s.cmd(["init", "--pooler", "pgbouncer"]).run().success();
    let before = s.snapshot();
    for bad in [
        "127.0.0.1:5000",
        "acme/stack",
        "https://ghcr.io/acme",
        "ghcr.io/Acme",
        "registry.example:99999/x",
    ] {
        let d = s
            .cmd(["publish", "--registry", bad, "postgres"])
            .run()
            .failure()
            .stderr_contains(&format!("--registry `{bad}` is not HOST[:PORT]/NAMESPACE"))
            .stderr_contains("hint:");
        assert_eq!(d.stdout(), "");
    }
    s.cmd([
        "publish",
        "--registry",
        "127.0.0.1:5000/x",
        "--tag",
        "no/slash",
    ])
    .run()
    .failure()
    .stderr_contains("--tag `no/slash` is not a valid image tag");
    s.cmd(["publish", "--registry", "127.0.0.1:5000/x", "mysql"])
        .run()
        .failure()
        .stderr_contains("stackctl does not publish an image named `mysql`");
    let dead = format!("127.0.0.1:{}", free_port());
    let d = s
        .cmd(["publish", "--registry", &format!("{dead}/x"), "postgres"])
        .run()
        .failure()
        .stderr_contains(&format!("cannot reach the registry {dead}"))
        .stderr_contains("hint:");
    println!(
        "unreachable: {}",
        d.stderr()
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap()
    );
    assert_unchanged(&before, &s.snapshot());
}
