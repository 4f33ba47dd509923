//! Helpers scenarios in both test binaries use (the Swarm scenario runs in its own): waiting
//! for a condition, reading a raw HTTP answer and a token from `token create`, and building the
//! service binaries the images copy.

use std::process::Command;
use std::time::{Duration, Instant};

/// Polls until `f` returns Some, or panics with `what` after `within`.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP/1.x answer as (status, body).
pub fn http_answer(answer: &str) -> (u16, String) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The token a `token create` / `gen-token` run printed (the one line that starts with `pg_`).
pub fn token_of(stdout: &str) -> String {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("pg_") && l.len() > 40)
        .unwrap_or_else(|| panic!("no token in the output:\n{stdout}"))
        .to_string()
}

/// `cargo build` of the service binaries `stackctl build` copies from beside stackctl: the
/// whole workspace's, so features resolve as in the workspace build (nothing is rebuilt after
/// one; `-p postgate -p runner` alone would resolve them differently and rebuild dependencies).
pub fn build_service_binaries() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--workspace", "--bins"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo build");
    assert!(
        out.status.success(),
        "cargo build --workspace --bins failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
