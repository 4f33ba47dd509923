//! Convergence: a small project comes up, is idempotent, recreates only what changed, keeps its
//! volumes across `down`, and converges again after `up` was killed part-way.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{Proj, SMALL};
use crate::support::{compose_v2, docker};

#[test]
fn small_project_converges_is_idempotent_and_recreates_only_what_changed() {
    let p = Proj::new("conv");
    p.compose(SMALL);
    p.s.write("conf/c.txt", "config v1\n");
    // The config file is 0600 on the host: it is uploaded, not bind-mounted, so that does not matter.
    std::fs::set_permissions(
        p.s.file("conf/c.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    p.up(&["--without", "apps"])
        .run()
        .success()
        .stderr_contains("healthy");
    let first = p.containers();
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["db-1", "job-1"],
        "--without apps leaves web out"
    );
    let mode = docker(&[
        "exec",
        &format!("{}-db-1", p.name),
        "stat",
        "-c",
        "%a %u",
        "/etc/app/c.txt",
    ]);
    assert_eq!(mode, "400 0");
    docker(&[
        "exec",
        &format!("{}-db-1", p.name),
        "sh",
        "-c",
        "echo kept > /data/row",
    ]);

    p.up(&[]).run().success();
    let all = p.containers();
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["db-1", "job-1", "web-1", "web-2"]
    );
    assert_eq!(all["db-1"], first["db-1"]);

    // No change: the same containers.
    p.up(&[]).run().success().stderr_contains("up to date");
    assert_eq!(p.containers(), all);

    // Environment change: only db is recreated.
    p.up(&[])
        .env("GREETING", "hello")
        .run()
        .success()
        .stderr_contains("recreating (configuration changed)");
    let after = p.containers();
    assert_ne!(after["db-1"], all["db-1"]);
    assert_eq!(after["web-1"], all["web-1"]);
    assert_eq!(after["web-2"], all["web-2"]);
    // A config file's content is part of the hash too.
    p.s.write("conf/c.txt", "config v2\n");
    p.up(&[]).env("GREETING", "hello").run().success();
    let after2 = p.containers();
    assert_ne!(after2["db-1"], after["db-1"]);
    assert_eq!(after2["web-1"], all["web-1"]);
    assert_eq!(
        docker(&["exec", &format!("{}-db-1", p.name), "cat", "/etc/app/c.txt"]),
        "config v2"
    );

    // Docker Compose sees the stack.
    let out = compose_v2()
        .args(["-p", &p.name, "ps", "--format", "{{.Service}}"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&out.stdout);
    for s in ["db", "web"] {
        assert!(ps.lines().any(|l| l == s), "compose ps lacks {s}: {ps}");
    }

    // status and logs.
    // `up` learns readiness by running the healthcheck itself; Docker's own status follows at
    // its next interval (1 s here).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = p.s.cmd(["status", "--json"]).run().success().stdout();
        let rows: serde_json::Value = serde_json::from_str(&st).unwrap();
        let db = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service"] == "db")
            .unwrap()
            .clone();
        assert_eq!(db["state"], "running");
        assert!(
            db["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.as_str().unwrap().starts_with("127.0.0.1:")),
            "{db}"
        );
        if db["health"] == "healthy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "db never reported healthy by Docker: {db}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = p.s.cmd(["logs", "--tail", "all"]).run().success().stdout();
    assert!(
        logs.lines()
            .any(|l| l.starts_with("db ") && l.ends_with("| db says hello")),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.starts_with("web-2") && l.ends_with("| web up")),
        "{logs}"
    );
    // The job succeeded once; later `up`s with the same inputs did not run it again.
    let runs = logs
        .lines()
        .filter(|l| l.starts_with("job") && l.ends_with("| job done"))
        .count();
    assert_eq!(runs, 1, "{logs}");

    // A service removed from the file is removed.
    p.compose(&SMALL.replace("    deploy: {replicas: 2}\n", ""));
    p.up(&[]).env("GREETING", "hello").run().success();
    assert!(!p.containers().contains_key("web-2"));

    // down keeps volumes; the data survives the next up.
    p.s.cmd(["down"]).run().success();
    assert!(p.containers().is_empty());
    p.up(&["db"]).env("GREETING", "hello").run().success();
    assert_eq!(
        docker(&["exec", &format!("{}-db-1", p.name), "cat", "/data/row"]),
        "kept"
    );
    p.s.cmd(["down", "--volumes"])
        .run()
        .success()
        .stdout_contains(&format!("removed volume {}_data", p.name));
}

/// `down --volumes` removes the data but keeps the backup repository (the `backups` volume);
/// `--include-backups` removes it only with `--yes`.
#[test]
fn down_volumes_keeps_the_backup_repository_unless_told_twice() {
    let p = Proj::new("keep");
    p.compose(
        r#"name: NAME
services:
  db:
    image: debian:trixie-slim
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    volumes: ["data:/data", "backups:/backups"]
volumes:
  data: {}
  backups: {}
"#,
    );
    p.up(&[]).run().success();
    let volumes = || {
        let out = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", p.name))
            .output()
            .unwrap();
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let (data, backups) = (format!("{}_data", p.name), format!("{}_backups", p.name));
    assert_eq!(volumes(), [backups.clone(), data.clone()]);
    p.s.cmd(["down", "--volumes"])
        .run()
        .success()
        .stdout_contains(&format!("removed volume {data}"))
        .stdout_contains(&format!("kept volume {backups}"));
    assert_eq!(volumes(), vec![backups.clone()]);
    let refused =
        p.s.cmd(["down", "--volumes", "--include-backups"])
            .run()
            .failure();
    refused.stderr_contains("add --yes");
    assert_eq!(volumes(), vec![backups.clone()]);
    p.s.cmd(["down", "--volumes", "--include-backups", "--yes"])
        .run()
        .success()
        .stdout_contains(&format!("removed volume {backups}"));
    assert!(volumes().is_empty());
}

#[test]
fn sigkill_part_way_then_up_converges() {
    let p = Proj::new("kill");
    p.compose(
        r#"name: NAME
services:
  slow:
    image: debian:trixie-slim
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; sleep infinity"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
  a:
    image: debian:trixie-slim
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    deploy: {replicas: 2}
    depends_on:
      slow: {condition: service_healthy}
  b:
    image: debian:trixie-slim
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
"#,
    );
    let mut child = p
        .up(&[])
        .cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(900));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = p.containers();
    assert!(
        !partial.contains_key("a-1"),
        "killed before `slow` was healthy, yet a-1 exists: {partial:?}"
    );

    p.up(&[]).run().success();
    let all = p.containers();
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["a-1", "a-2", "b-1", "slow-1"]
    );
    for name in ["a-1", "a-2", "b-1", "slow-1"] {
        let state = docker(&[
            "inspect",
            "-f",
            "{{.State.Status}}",
            &format!("{}-{name}", p.name),
        ]);
        assert_eq!(state, "running", "{name}");
    }
    p.up(&[]).run().success();
    assert_eq!(
        p.containers(),
        all,
        "a second up after recovery changes nothing"
    );
}
