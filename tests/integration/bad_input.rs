//! Bad input: each case exits non-zero, says what is wrong and where, and writes nothing (the
//! directory tree, modes and bytes, is compared before and after).

use std::path::Path;

use crate::support::{Done, Run, Stackctl, assert_unchanged, snapshot, stackctl_in};

/// Runs `run`, expects failure with every `expect` in stderr, and `root` unchanged.
fn refused(root: &Path, run: Run, expect: &[&str]) -> Done {
    let before = snapshot(root);
    let mut done = run.run().failure();
    for e in expect {
        done = done.stderr_contains(e);
    }
    assert_unchanged(&before, &snapshot(root));
    done
}

/// An initialised stack with a change to stack.toml that the next render would write out
/// (pgcat.toml's pool sizes), and nothing rendered yet: a refused command must write neither.
fn pending() -> Stackctl {
    let s = Stackctl::new();
    s.cmd(["init", "--domain", "example.com"]).run().success();
    s.edit("stack.toml", "pool_size = 20", "pool_size = 21");
    s
}

/// The 1-based line of the first line of stack.toml starting with `prefix`.
fn line_of(s: &Stackctl, prefix: &str) -> usize {
    s.read("stack.toml")
        .lines()
        .position(|l| l.starts_with(prefix))
        .expect(prefix)
        + 1
}

#[test]
fn unknown_key_in_stack_toml() {
    let s = pending();
    s.edit("stack.toml", "replicas = 3", "replicas = 3\nreplica = 4");
    let at = format!("stack.toml:{}:", line_of(&s, "replica ="));
    refused(
        s.path(),
        s.cmd(["render"]),
        &[&at, "runner.replica", "unknown field `replica`"],
    );
    // init reads stack.toml too: it refuses before writing the certificates it would recreate.
    std::fs::remove_dir_all(s.file("certs")).unwrap();
    refused(s.path(), s.cmd(["init"]), &[&at, "unknown field `replica`"]);
}

#[test]
fn invalid_domain_on_the_command_line() {
    let s = Stackctl::new();
    refused(
        s.path(),
        s.cmd(["init", "--domain", "bad_domain!"]),
        &["--domain `bad_domain!` is not a valid domain"],
    );
    // A stack directory that does not exist yet is not created either.
    let new = s.file("new-stack");
    refused(
        s.path(),
        stackctl_in(&new, ["init", "--domain", "bad_domain!"]),
        &["--domain", "bad_domain!"],
    );
    assert!(!new.exists());
}

#[test]
fn invalid_domain_in_stack_toml() {
    let s = pending();
    s.edit(
        "stack.toml",
        "domain = \"example.com\"",
        "domain = \"bad_domain!\"",
    );
    let at = format!("stack.toml:{}:", line_of(&s, "domain ="));
    refused(
        s.path(),
        s.cmd(["render"]),
        &[&at, "project.domain `bad_domain!` is not a valid domain"],
    );

    let s = pending();
    s.edit(
        "stack.toml",
        "grafana = \"\"",
        "grafana = \"logs example.com\"",
    );
    let at = format!("stack.toml:{}:", line_of(&s, "grafana = \"logs"));
    refused(
        s.path(),
        s.cmd(["render", "--target", "local"]),
        &[&at, "domains.grafana `logs example.com`"],
    );
}

#[test]
fn zero_workflow_retention_in_stack_toml() {
    let s = pending();
    s.edit(
        "stack.toml",
        "workflow_retention_days = 30",
        "workflow_retention_days = 0",
    );
    let at = format!("stack.toml:{}:", line_of(&s, "workflow_retention_days ="));
    refused(
        s.path(),
        s.cmd(["render"]),
        &[
            &at,
            "runner.workflow_retention_days is 0; it must be a positive number",
        ],
    );
}

#[test]
fn unknown_pooler_on_the_command_line() {
    let s = Stackctl::new();
    refused(
        s.path(),
        s.cmd(["init", "--pooler", "nope"]),
        &["'nope'", "--pooler", "pgcat", "pgbouncer"],
    );
}

#[test]
fn unknown_pooler_in_stack_toml() {
    let s = pending();
    s.edit("stack.toml", "kind = \"pgcat\"", "kind = \"nope\"");
    let at = format!("stack.toml:{}:", line_of(&s, "kind ="));
    refused(
        s.path(),
        s.cmd(["render"]),
        &[
            &at,
            "pooler.kind",
            "unknown variant `nope`",
            "`pgcat` or `pgbouncer`",
        ],
    );
}

#[test]
fn env_missing_a_secret() {
    let s = pending();
    let env = s.read(".env");
    let kept: String = env
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("JWT_SECRET="))
        .collect();
    std::fs::write(s.file(".env"), kept).unwrap();
    let done = refused(
        s.path(),
        s.cmd(["render"]),
        &[
            "is missing the secret JWT_SECRET",
            "hint: run `stackctl init`",
        ],
    );
    assert!(done.stderr().contains("adds missing"), "{}", done.stderr());
    // The hint works: init adds the key, and render goes through.
    s.cmd(["init"])
        .run()
        .success()
        .stdout_contains("added to .env: JWT_SECRET");
    s.cmd(["render"]).run().success();
}

#[test]
fn env_with_an_empty_secret() {
    let s = pending();
    s.edit(".env", "APP_DB_PASSWORD=", "APP_DB_PASSWORD=\n#");
    assert!(s.env_values()["APP_DB_PASSWORD"].is_empty());
    refused(
        s.path(),
        s.cmd(["render"]),
        &[
            "empty value for APP_DB_PASSWORD",
            "stackctl init --rotate APP_DB_PASSWORD",
        ],
    );
    // init refuses too, before recreating anything (here: the certificates).
    std::fs::remove_dir_all(s.file("certs")).unwrap();
    refused(
        s.path(),
        s.cmd(["init"]),
        &["empty value for APP_DB_PASSWORD"],
    );
    // The hint works.
    s.cmd(["init", "--rotate", "APP_DB_PASSWORD"])
        .run()
        .success();
    assert_eq!(s.env_values()["APP_DB_PASSWORD"].len(), 32);
    s.cmd(["render"]).run().success();
}

// Unwritable directories. Tests run as root here, and root ignores permission bits, so
// `chmod 0500` would not stop a write; a read-only mount would, but needs privileges a test
// cannot count on. A path that runs through a regular FILE cannot be created by anyone,
// root included, so every case below puts a file where a directory has to be.

#[test]
fn unwritable_stack_directory_for_init() {
    let s = Stackctl::new();
    s.write("file.txt", "not a directory\n");
    let dir = s.file("file.txt/sub");
    refused(
        s.path(),
        stackctl_in(&dir, ["init"]),
        &["file.txt is a file, not a directory"],
    );
    refused(
        s.path(),
        stackctl_in(&s.file("file.txt"), ["init"]),
        &["file.txt is a file, not a directory"],
    );
}

#[test]
fn unwritable_output_for_render() {
    let s = pending();
    s.write("file.txt", "not a directory\n");
    let out = s.file("file.txt/docker-compose.yml");
    refused(
        s.path(),
        s.cmd([
            "render",
            "--target",
            "local",
            "--output",
            out.to_str().unwrap(),
        ]),
        &["cannot write", "file.txt is a file, not a directory"],
    );
}

#[test]
fn unwritable_dokploy_directories_for_render() {
    // `dokploy` itself is a file: the Compose file cannot be written.
    let s = pending();
    s.write("dokploy", "");
    refused(
        s.path(),
        s.cmd(["render"]),
        &["dokploy is a file, not a directory"],
    );

    // `dokploy/files` is a file: the Compose file could be written, the mounted files could not;
    // neither is.
    let s = pending();
    s.write("dokploy/files", "");
    refused(
        s.path(),
        s.cmd(["render"]),
        &["dokploy/files is a file, not a directory"],
    );
}

#[test]
fn init_refuses_bad_flags_before_writing_anything() {
    let s = Stackctl::new();
    refused(
        s.path(),
        s.cmd(["init", "--project", "Bad Name"]),
        &["--project `Bad Name` is not a valid Compose project name"],
    );
    refused(
        s.path(),
        s.cmd(["init", "--rotate", "NOPE"]),
        &["unknown secret `NOPE`", "APP_DB_PASSWORD"],
    );
    refused(
        s.path(),
        s.cmd(["init", "--rotate", "APP_DB_PASSWORD"]),
        &[".env does not exist"],
    );
}
