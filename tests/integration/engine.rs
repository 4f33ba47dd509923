//! The engine against the real Docker Engine: small Compose projects on `debian:trixie-slim`
//! (made by scripts/base-image.sh; nothing can be pulled here), each under a unique project name
//! and always taken down (with its volumes) by a guard, even when the test fails.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Stackctl, compose_v2, docker, free_port, require_docker};

/// A stack directory with a unique project name; `down --volumes` on drop.
pub(crate) struct Proj {
    pub(crate) s: Stackctl,
    pub(crate) name: String,
}

impl Proj {
    pub(crate) fn new(tag: &str) -> Proj {
        require_docker();
        let suffix: u32 = rand_suffix();
        let name = format!("t{tag}{suffix:08x}");
        let s = Stackctl::new();
        s.write("stack.toml", &format!("[project]\nname = \"{name}\"\n"));
        Proj { s, name }
    }

    /// Writes `compose.yml` with `NAME` replaced by the project name.
    fn compose(&self, text: &str) {
        self.s
            .write("compose.yml", &text.replace("NAME", &self.name));
    }

    fn up(&self, extra: &[&str]) -> crate::support::Run {
        let mut args = vec!["up", "-f", "compose.yml"];
        args.extend_from_slice(extra);
        let f = self.s.file("compose.yml");
        let mut r = self.s.cmd(args);
        r.cmd.current_dir(f.parent().unwrap());
        r
    }

    /// service-number -> container id of the project's service containers.
    pub(crate) fn containers(&self) -> BTreeMap<String, String> {
        let out = Command::new("docker")
            .args(["ps", "-a", "--filter", &format!("label=com.docker.compose.project={}", self.name)])
            .args(["--filter", "label=com.docker.compose.oneoff=False", "--format"])
            .arg("{{.Label \"com.docker.compose.service\"}}-{{.Label \"com.docker.compose.container-number\"}} {{.ID}}")
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect()
    }
}

impl Drop for Proj {
    fn drop(&mut self) {
        let _ = self.s.cmd(["down", "--volumes"]).run();
    }
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    h.finish() as u32
}

const SMALL: &str = r#"
name: NAME
services:
  db:
    image: debian:trixie-slim
    command: ["sh", "-c", "echo db says hello; sleep infinity"]
    stop_grace_period: 1s
    environment:
      GREETING: ${GREETING:-hi}
    healthcheck:
      test: ["CMD", "test", "-f", "/etc/app/c.txt"]
      interval: 1s
    configs:
      - source: c
        target: /etc/app/c.txt
        mode: 0400
    volumes: ["data:/data"]
    ports: ["127.0.0.1::8787"]
    networks:
      net:
        aliases: [database]
    labels:
      dev.stackctl.group: core
  job:
    image: debian:trixie-slim
    command: ["sh", "-c", "getent hosts database && echo job done"]
    restart: "no"
    depends_on:
      db: {condition: service_healthy}
    networks: [net]
    labels:
      dev.stackctl.group: core
  web:
    image: debian:trixie-slim
    command: ["sh", "-c", "echo web up; sleep infinity"]
    stop_grace_period: 1s
    deploy: {replicas: 2}
    depends_on:
      job: {condition: service_completed_successfully}
    networks: [net]
    labels:
      dev.stackctl.group: apps
networks:
  net: {}
volumes:
  data: {}
configs:
  c:
    file: ./conf/c.txt
"#;

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

#[test]
fn unknown_compose_key_is_refused() {
    let p = Proj::new("key");
    p.compose(&SMALL.replace(
        "    restart: \"no\"\n",
        "    restart: \"no\"\n    privileged: true\n",
    ));
    p.s.write("conf/c.txt", "x\n");
    p.up(&[])
        .run()
        .failure()
        .stderr_contains("unsupported Compose key `privileged` in service `job`");
    assert!(p.containers().is_empty(), "nothing may be created");
}

#[test]
fn docker_unreachable_is_one_clear_line() {
    let p = Proj::new("unr");
    p.compose(SMALL);
    p.s.write("conf/c.txt", "x\n");
    let done = p
        .up(&[])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .run()
        .failure();
    let err = done.stderr();
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("cannot reach the Docker Engine at DOCKER_HOST=unix:///nonexistent.sock"),
        "{err}"
    );
    p.s.cmd(["status"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .run()
        .failure()
        .stderr_contains("cannot reach the Docker Engine");
    // A tcp:// DOCKER_HOST is honoured too (not silently replaced by the default socket).
    p.s.cmd(["status"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .run()
        .failure()
        .stderr_contains("cannot reach the Docker Engine at DOCKER_HOST=tcp://127.0.0.1:1");
}

#[test]
fn published_port_already_taken_names_the_port() {
    let p = Proj::new("port");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    p.compose(&format!(
        "name: NAME\nservices:\n  web:\n    image: debian:trixie-slim\n    command: [\"sleep\", \"infinity\"]\n    stop_grace_period: 1s\n    ports: [\"127.0.0.1:{port}:80\"]\n"
    ));
    p.up(&[])
        .run()
        .failure()
        .stderr_contains(&format!("port 127.0.0.1:{port} is already in use"))
        .stderr_contains("hint: stop what holds it");
    drop(listener);
    p.up(&[]).run().success();
}

#[test]
fn never_healthy_names_the_service_and_shows_its_log() {
    let p = Proj::new("sick");
    p.compose(
        r#"name: NAME
services:
  sick:
    image: debian:trixie-slim
    command: ["sh", "-c", "echo booting the sick service; echo missing the widget >&2; sleep infinity"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD-SHELL", "exit 1"]
      interval: 1s
      retries: 2
  after:
    image: debian:trixie-slim
    command: ["sleep", "infinity"]
    depends_on:
      sick: {condition: service_healthy}
"#,
    );
    let started = Instant::now();
    let done = p.up(&["--wait-timeout", "30"]).run().failure();
    let err = done.stderr();
    assert!(
        err.contains("service `sick` failed (service_healthy)"),
        "{err}"
    );
    assert!(
        err.contains("booting the sick service") && err.contains("missing the widget"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "Docker's unhealthy verdict should end the wait early"
    );
    assert!(
        !p.containers().contains_key("after-1"),
        "a dependent of an unhealthy service must not start"
    );

    // A crash loop under a restart policy fails at once, not at the deadline.
    p.compose(
        "name: NAME\nservices:\n  crashy:\n    image: debian:trixie-slim\n    command: [\"sh\", \"-c\", \"echo config is broken; exit 2\"]\n    restart: unless-stopped\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n",
    );
    let started = Instant::now();
    p.up(&["--wait-timeout", "60"])
        .run()
        .failure()
        .stderr_contains("service `crashy` failed (service_healthy)")
        .stderr_contains("config is broken");
    assert!(started.elapsed() < Duration::from_secs(30));

    // A one-off that exits non-zero fails `up` with its log.
    p.compose("name: NAME\nservices:\n  job:\n    image: debian:trixie-slim\n    command: [\"sh\", \"-c\", \"echo migration 7 broke; exit 3\"]\n    restart: \"no\"\n");
    p.up(&[])
        .run()
        .failure()
        .stderr_contains("exited with code 3")
        .stderr_contains("migration 7 broke");
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

/// `psql` through 127.0.0.1:`port` as `user`; returns its unaligned output.
pub(crate) fn psql(port: u16, user: &str, password: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "app",
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql (postgresql-client) must be installed: scripts/test.sh installs it");
    assert!(
        out.status.success(),
        "psql as {user} on {port}: {sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Named (protocol-level) prepared statements through the pooler, as most drivers send them:
/// four clients each prepare a statement once and run it in 50 transactions at the same time,
/// so their transactions land on server connections that never saw the Parse. Without the
/// pooler's prepared-statement cache (`[pooler] prepared_statements`) this fails with
/// `prepared statement "s0" does not exist`.
fn named_prepared_statements_work(port: u16, user: &str, password: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("host=127.0.0.1 port={port} user={user} password={password} dbname=app");
    rt.block_on(async {
        let mut clients = Vec::new();
        for c in 0..4i32 {
            let url = url.clone();
            clients.push(tokio::spawn(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("connecting through the pooler");
                tokio::spawn(conn);
                let stmt = client
                    .prepare("SELECT $1::int4 + $2::int4")
                    .await
                    .expect("preparing a named statement through the pooler");
                for i in 0..50i32 {
                    let row = client
                        .query_one(&stmt, &[&i, &c])
                        .await
                        .unwrap_or_else(|e| {
                            panic!("client {c}, run {i} of a named statement: {e}")
                        });
                    assert_eq!(row.get::<_, i32>(0), i + c);
                }
            }));
        }
        for c in clients {
            c.await.expect("a client of the named statement");
        }
    });
}

/// The README's path on a fresh machine: init → up (core only) → a row through the pooler →
/// idempotent up → a stack.toml change recreates only its service → down → up → the row is there.
#[test]
fn end_to_end_core_stack_with_pgbouncer() {
    let p = Proj::new("e2e");
    let (pg_port, pool_port) = (free_port(), free_port());
    std::fs::remove_file(p.s.file("stack.toml")).unwrap(); // init writes the full one
    p.s.cmd(["init", "--pooler", "pgbouncer", "--project", &p.name])
        .run()
        .success();
    let toml = p.s.read("stack.toml");
    let toml = toml
        .replace("postgres = 5432", &format!("postgres = {pg_port}"))
        .replace("pooler = 6432", &format!("pooler = {pool_port}"));
    p.s.write("stack.toml", &toml);
    // An application migration: the migrate job applies it as db_migrator; `app` may write to it.
    p.s.write(
        "db/migrations/V1__notes.sql",
        "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL);\n",
    );
    let env = p.s.read(".env");
    let secret = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };

    // Our images (skipped when their content hash is unchanged).
    p.s.cmd(["build", "postgres", "pgbouncer", "stackctl"])
        .run()
        .success();
    p.s.cmd([
        "up",
        "--without",
        "observability",
        "--without",
        "apps",
        "--wait-timeout",
        "120",
    ])
    .run()
    .success()
    .stderr_contains("healthy");
    let ids = p.containers();
    assert_eq!(
        ids.keys().collect::<Vec<_>>(),
        ["migrate-1", "pgbouncer-1", "postgres-1"]
    );

    let app_pw = secret("APP_DB_PASSWORD");
    psql(
        pool_port,
        "app",
        &app_pw,
        "INSERT INTO notes (body) VALUES ('through the pooler')",
    );
    assert_eq!(
        psql(pool_port, "app", &app_pw, "SELECT count(*) FROM notes"),
        "1"
    );
    named_prepared_statements_work(pool_port, "app", &app_pw);

    // Nothing changed: the same containers.
    p.s.cmd(["up", "--without", "observability", "--without", "apps"])
        .run()
        .success();
    assert_eq!(p.containers(), ids);

    // `stackctl migrate` runs the migrate service once more in a one-off container, removed after.
    p.s.cmd(["migrate"]).run().success();
    assert_eq!(p.containers(), ids);
    let leftovers = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={}", p.name),
        "--filter",
        "label=com.docker.compose.oneoff=True",
    ]);
    assert!(leftovers.is_empty(), "one-off containers left: {leftovers}");

    // `migrate status --json` runs in the stack too, and its stdout is JSON only.
    let status =
        p.s.cmd(["migrate", "status", "--json"])
            .run()
            .success()
            .stdout();
    let status: serde_json::Value = serde_json::from_str(status.trim())
        .unwrap_or_else(|e| panic!("migrate status --json is not JSON ({e}):\n{status}"));
    let app = status["app"].as_array().expect("app migrations");
    assert!(
        app.iter()
            .any(|m| m["state"] == "applied" || m["applied_on"].is_string()),
        "the app migration is not applied: {status}"
    );

    // A pooler setting changes pgbouncer.ini: only pgbouncer is recreated.
    p.s.write(
        "stack.toml",
        &p.s.read("stack.toml")
            .replace("pool_size = 20", "pool_size = 10"),
    );
    p.s.cmd(["up", "--without", "observability", "--without", "apps"])
        .run()
        .success();
    let after = p.containers();
    assert_eq!(after["postgres-1"], ids["postgres-1"]);
    assert_eq!(after["migrate-1"], ids["migrate-1"]);
    assert_ne!(after["pgbouncer-1"], ids["pgbouncer-1"]);

    // down keeps the data volume.
    p.s.cmd(["down"]).run().success();
    assert!(p.containers().is_empty());
    p.s.cmd([
        "up",
        "--without",
        "observability",
        "--without",
        "apps",
        "--wait-timeout",
        "120",
    ])
    .run()
    .success();
    assert_eq!(
        psql(pool_port, "app", &app_pw, "SELECT body FROM notes"),
        "through the pooler"
    );
}

#[test]
fn an_image_that_cannot_be_pulled_is_named_with_how_to_provide_it() {
    let p = Proj::new("pull");
    p.compose("name: NAME\nservices:\n  web:\n    image: registry.invalid/nobody/nothing:1.0\n    command: [\"true\"]\n");
    p.up(&[])
        .run()
        .failure()
        .stderr_contains(
            "image registry.invalid/nobody/nothing:1.0 is not on this machine and cannot be pulled",
        )
        .stderr_contains("docker load")
        .stderr_contains("[images] in stack.toml");
    assert!(p.containers().is_empty());
}

#[test]
fn logs_follow_prefixes_each_replica_and_keeps_streaming() {
    use std::io::{BufRead, BufReader};
    let p = Proj::new("logs");
    p.compose(
        r#"name: NAME
services:
  talker:
    image: debian:trixie-slim
    command: ["sh", "-c", "i=0; while true; i=$$((i+1)); do echo tick $$i; sleep 0.2; done"]
    stop_grace_period: 1s
    deploy: {replicas: 2}
"#,
    );
    p.up(&[]).run().success();
    let mut child =
        p.s.cmd(["logs", "--follow", "--tail", "0", "talker"])
            .cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut one, mut two) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(one && two) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        assert!(line.contains(" | tick "), "{line}");
        one |= line.starts_with("talker-1 | ");
        two |= line.starts_with("talker-2 | ");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        one && two,
        "new lines of both replicas arrive while following"
    );
}
