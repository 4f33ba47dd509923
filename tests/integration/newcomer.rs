//! A newcomer's first hour (issue 15): commands typed from inside the stack directory (no
//! `--dir`), and `up`'s word on health against Docker's own, checked at once after `up` returns.

use std::process::Command;

use crate::engine::Proj;
use crate::support::{Postgres, Stackctl, docker, require_docker};

const SOURCE_SQL: &str = include_str!("supabase_source.sql");

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"))
}

/// Docker's own health verdict for a container (`docker inspect`'s State.Health.Status).
fn docker_health(container: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Health.Status}}", container])
}

/// `status --json`'s health of `service`, run from inside the stack directory.
fn status_health(s: &Stackctl, service: &str) -> String {
    let rows = json(&s.cmd_inside(["status", "--json"]).run().success().stdout());
    let row = rows
        .as_array()
        .expect("status --json is an array")
        .iter()
        .find(|r| r["service"] == service)
        .unwrap_or_else(|| panic!("no {service} in {rows:#}"))
        .clone();
    row["health"].as_str().unwrap_or_default().to_string()
}

/// `import-supabase` run in the stack directory without `--dir` mounts the state directory
/// `./.stackctl/import` into its pg_restore / pg_dump containers: Docker refuses a relative bind
/// source (400), so the path must reach it absolute. Both modes: a relative `--dump FILE`
/// (dry run: pg_restore lists it in a container) and `--from URL` (the whole import, verified).
#[test]
fn import_supabase_works_from_inside_the_stack_directory() {
    let (src, tgt) = std::thread::scope(|s| {
        let a = s.spawn(Postgres::start);
        let b = s.spawn(Postgres::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    src.db().batch(SOURCE_SQL).expect("seeding the source");
    let stack = Stackctl::new();
    stack.cmd_inside(["init"]).run().success();
    stack
        .cmd_inside(["migrate", "--database-url", &tgt.url()])
        .run()
        .success();

    let dump = Command::new("docker")
        .args(["exec", "-e"])
        .arg(format!("PGPASSWORD={}", src.password))
        .args([
            &src.name,
            "pg_dump",
            "-Fc",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-d", &src.database])
        .output()
        .expect("docker exec pg_dump");
    assert!(
        dump.status.success() && !dump.stdout.is_empty(),
        "pg_dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    std::fs::write(stack.file("source.dump"), &dump.stdout).unwrap();
    let dry = stack
        .cmd_inside([
            "import-supabase",
            "--dump",
            "source.dump",
            "--database-url",
            &tgt.url(),
            "--dry-run",
        ])
        .run()
        .success();
    assert!(dry.stdout().contains("app, public"), "{}", dry.stdout());

    let done = stack
        .cmd_inside([
            "import-supabase",
            "--from",
            &src.url(),
            "--database-url",
            &tgt.url(),
            "--json",
        ])
        .run()
        .success();
    let v = json(&done.stdout());
    assert_eq!(v["verification"]["ok"], true, "{v:#}");
    assert_eq!(
        tgt.db().int("SELECT count(*) FROM app.todos"),
        6000,
        "the rows arrived"
    );
}

/// A healthcheck whose first run by Docker comes 4 s after start, on a service ready after 1 s:
/// when `up` says `healthy`, `status` and `docker inspect` say the same at once. Run from inside
/// the stack directory, with a relative bind mount that must reach Docker absolute.
#[test]
fn up_says_healthy_only_when_docker_does() {
    let p = Proj::new("agree");
    p.s.write("data/hello.txt", "hi\n");
    p.s.write(
        "compose.yml",
        &r#"name: NAME
services:
  slowcheck:
    image: debian:trixie-slim
    command: ["sh", "-c", "sleep 1; touch /tmp/ready; sleep infinity"]
    stop_grace_period: 1s
    volumes: ["./data:/data:ro"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 4s
      retries: 3
"#
        .replace("NAME", &p.name),
    );
    let up =
        p.s.cmd_inside(["up", "-f", "compose.yml", "--wait-timeout", "60"])
            .run()
            .success();
    assert!(
        up.stderr()
            .lines()
            .any(|l| l.split_whitespace().eq(["slowcheck", "healthy"])),
        "{}",
        up.stderr()
    );
    let container = format!("{}-slowcheck-1", p.name);
    assert_eq!(docker_health(&container), "healthy", "docker inspect");
    assert_eq!(
        status_health(&p.s, "slowcheck"),
        "healthy",
        "stackctl status"
    );

    let mounts = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Source}}{{end}}",
            &container,
        ])
        .output()
        .expect("docker inspect");
    let data = std::fs::canonicalize(p.s.file("data")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&mounts.stdout).trim(),
        data.to_str().unwrap()
    );
}

/// The README's path: `init`, then `up postgres` typed in the stack directory; right after it
/// printed `postgres healthy`, `stackctl status` and Docker agree.
#[test]
fn postgres_healthy_after_up_is_healthy_in_status_and_in_docker() {
    require_docker();
    let p = Proj::new("pghc");
    std::fs::remove_file(p.s.file("stack.toml")).unwrap(); // init writes the full one
    p.s.cmd_inside(["init", "--pooler", "pgbouncer", "--project", &p.name])
        .run()
        .success();
    p.s.free_ports(["postgres", "pooler"]);
    p.s.cmd_inside(["build", "postgres"]).run().success();
    let up =
        p.s.cmd_inside(["up", "postgres", "--wait-timeout", "120"])
            .run()
            .success();
    assert!(
        up.stderr()
            .lines()
            .any(|l| l.split_whitespace().eq(["postgres", "healthy"])),
        "{}",
        up.stderr()
    );
    assert_eq!(
        status_health(&p.s, "postgres"),
        "healthy",
        "stackctl status"
    );
    assert_eq!(
        docker_health(&format!("{}-postgres-1", p.name)),
        "healthy",
        "docker inspect"
    );
}
