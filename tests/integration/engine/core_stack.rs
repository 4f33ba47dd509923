//! The README's path with our real images: the core stack (PostgreSQL, PgBouncer, the migrate
//! job) comes up, serves rows and named prepared statements through the pooler, and keeps its
//! data across `down` and `up`.

use std::process::Command;

use super::Proj;
use crate::support::docker;

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
    std::fs::remove_file(p.s.file("stack.toml")).unwrap(); // init writes the full one
    p.s.cmd(["init", "--pooler", "pgbouncer", "--project", &p.name])
        .run()
        .success();
    let [_, pool_port] = p.s.free_ports(["postgres", "pooler"]);
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
    p.s.up_core(&["--wait-timeout", "120"])
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
    p.s.up_core(&[]).run().success();
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
    p.s.up_core(&[]).run().success();
    let after = p.containers();
    assert_eq!(after["postgres-1"], ids["postgres-1"]);
    assert_eq!(after["migrate-1"], ids["migrate-1"]);
    assert_ne!(after["pgbouncer-1"], ids["pgbouncer-1"]);

    // down keeps the data volume.
    p.s.cmd(["down"]).run().success();
    assert!(p.containers().is_empty());
    p.s.up_core(&["--wait-timeout", "120"]).run().success();
    assert_eq!(
        psql(pool_port, "app", &app_pw, "SELECT body FROM notes"),
        "through the pooler"
    );
}
