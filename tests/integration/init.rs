//! `stackctl init`: files, modes, idempotence, rotation.

use crate::support::{Stackctl, mode};

#[test]
fn init_writes_every_file_with_its_mode() {
    let s = Stackctl::new();
    s.cmd(["init", "--project", "demo", "--domain", "example.com"])
        .run()
        .success()
        .stdout_contains("wrote .env");
    for (f, m) in [
        ("stack.toml", 0o644),
        (".env", 0o600),
        ("pgcat/pgcat.toml", 0o600),
        ("certs/ca.crt", 0o644),
        ("certs/ca.key", 0o600),
        ("certs/server.crt", 0o644),
        ("certs/server.key", 0o600),
        (".gitignore", 0o644),
        ("observability/loki.yaml", 0o644),
    ] {
        assert_eq!(mode(&s.file(f)), m, "{f}");
    }
    let env = s.read(".env");
    for key in [
        "POSTGRES_PASSWORD",
        "MIGRATOR_PASSWORD",
        "AUTHENTICATOR_PASSWORD",
        "POSTGATE_DB_PASSWORD",
        "RUNNER_DB_PASSWORD",
        "APP_DB_PASSWORD",
        "JWT_SECRET",
        "POSTGATE_TOKEN_PEPPER",
        "RUNNER_SECRETS_KEY",
        "POOLER_ADMIN_PASSWORD",
        "MONITOR_DB_PASSWORD",
        "BACKUP_PASSPHRASE",
        "GRAFANA_ADMIN_PASSWORD",
    ] {
        let line = env
            .lines()
            .find(|l| l.starts_with(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing"));
        let value = &line[key.len() + 1..];
        assert!(
            value.len() >= 32 && value.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{key}={value}"
        );
    }
    let toml = s.read("stack.toml");
    assert!(
        toml.contains("name = \"demo\"")
            && toml.contains("replicas = 3")
            && toml.contains("kind = \"pgcat\""),
        "{toml}"
    );
    let gi = s.read(".gitignore");
    for l in [".env", "certs/*.key", "pgcat/pgcat.toml"] {
        assert!(gi.lines().any(|x| x == l), "{l} not in .gitignore");
    }
}

#[test]
fn second_init_keeps_env_byte_for_byte_and_adds_only_missing() {
    let s = Stackctl::new();
    s.cmd(["init"]).run().success();
    let before = std::fs::read(s.file(".env")).unwrap();
    s.cmd(["init"])
        .run()
        .success()
        .stdout_contains("nothing changed");
    assert_eq!(std::fs::read(s.file(".env")).unwrap(), before);

    // Remove one secret: the next init adds it back and touches nothing else.
    let text = String::from_utf8(before.clone()).unwrap();
    let kept: String = text
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("JWT_SECRET="))
        .collect();
    std::fs::write(s.file(".env"), &kept).unwrap();
    s.cmd(["init"])
        .run()
        .success()
        .stdout_contains("added to .env: JWT_SECRET");
    let after = s.read(".env");
    assert!(after.starts_with(&kept), "existing bytes changed");
    assert!(after.lines().any(|l| l.starts_with("JWT_SECRET=")));
}

/// The value of `key` in the text of a `.env` file.
fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(String::from))
}

#[test]
fn rotating_the_runner_secrets_key_keeps_the_old_ones_as_previous() {
    let s = Stackctl::new();
    s.cmd(["init"]).run().success();
    let first = env_value(&s.read(".env"), "RUNNER_SECRETS_KEY").expect("key");
    assert_eq!(
        env_value(&s.read(".env"), "RUNNER_SECRETS_KEY_PREVIOUS"),
        None
    );
    s.cmd(["init", "--rotate", "RUNNER_SECRETS_KEY"])
        .run()
        .success()
        .stdout_contains("kept the old RUNNER_SECRETS_KEY in RUNNER_SECRETS_KEY_PREVIOUS");
    let env = s.read(".env");
    let second = env_value(&env, "RUNNER_SECRETS_KEY").expect("key");
    assert_ne!(first, second);
    assert_eq!(
        env_value(&env, "RUNNER_SECRETS_KEY_PREVIOUS").as_deref(),
        Some(first.as_str())
    );
    // Rotated again before the runner caught up: both earlier keys stay, newest first.
    s.cmd(["init", "--rotate", "RUNNER_SECRETS_KEY"])
        .run()
        .success();
    let env = s.read(".env");
    assert_eq!(
        env_value(&env, "RUNNER_SECRETS_KEY_PREVIOUS"),
        Some(format!("{second},{first}"))
    );
    assert_eq!(
        env.lines()
            .filter(|l| l.starts_with("RUNNER_SECRETS_KEY_PREVIOUS="))
            .count(),
        1
    );
    assert_eq!(mode(&s.file(".env")), 0o600);
}

#[test]
fn rotating_the_token_pepper_needs_its_own_flag() {
    let s = Stackctl::new();
    s.cmd(["init"]).run().success();
    let before = s.read(".env");
    s.cmd(["init", "--rotate", "POSTGATE_TOKEN_PEPPER"])
        .run()
        .failure()
        .stderr_contains("makes every postgate token stop working")
        .stderr_contains("--invalidate-tokens");
    assert_eq!(s.read(".env"), before, "nothing written");
    s.cmd([
        "init",
        "--rotate",
        "POSTGATE_TOKEN_PEPPER",
        "--invalidate-tokens",
    ])
    .run()
    .success()
    .stdout_contains("rotated POSTGATE_TOKEN_PEPPER");
    let pepper = |t: &str| env_value(t, "POSTGATE_TOKEN_PEPPER");
    assert_ne!(pepper(&s.read(".env")), pepper(&before));
}

#[test]
fn rotate_changes_only_the_named_key_and_keeps_a_backup() {
    let s = Stackctl::new();
    s.cmd(["init"]).run().success();
    let before = s.read(".env");
    s.cmd(["init", "--rotate", "APP_DB_PASSWORD"])
        .run()
        .success()
        .stdout_contains("rotated APP_DB_PASSWORD");
    let after = s.read(".env");
    let diff: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert!(diff[0].0.starts_with("APP_DB_PASSWORD=") && diff[0].1.starts_with("APP_DB_PASSWORD="));
    let backups: Vec<_> = std::fs::read_dir(s.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".env.bak."))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(mode(&backups[0].path()), 0o600);
    assert_eq!(std::fs::read_to_string(backups[0].path()).unwrap(), before);
    s.cmd(["init", "--rotate", "NOPE"])
        .run()
        .failure()
        .stderr_contains("unknown secret `NOPE`");
}
