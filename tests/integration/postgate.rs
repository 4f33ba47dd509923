//! postgate in the stack, on the real engine: `stackctl up postgate` (image from `stackctl build
//! postgate`), tenants and tokens with `stackctl tenant|token|gen-token`, and `POST /query` over the
//! published loopback port, through PgBouncer.

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::engine::Proj;
use crate::support::{build_service_binaries, http_answer, token_of};

/// One HTTP/1.0 request to 127.0.0.1:`port`; returns (status, body).
pub(crate) fn http(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting to postgate");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    http_answer(&answer)
}

pub(crate) fn query(port: u16, token: &str, sql: &str) -> (u16, serde_json::Value) {
    let (status, body) = http(
        port,
        "POST",
        "/query",
        token,
        &serde_json::json!({ "sql": sql }).to_string(),
    );
    let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, v)
}

#[test]
fn postgate_in_the_stack_tenants_tokens_and_queries_through_pgbouncer() {
    let p = Proj::new("pgt");
    build_service_binaries();
    std::fs::remove_file(p.s.file("stack.toml")).unwrap(); // init writes the full one
    p.s.cmd(["init", "--pooler", "pgbouncer", "--project", &p.name])
        .run()
        .success();
    let [_, _, gate_port, _] =
        p.s.free_ports(["postgres", "pooler", "postgate", "grafana"]);
    // stack.toml's [postgate] settings reach the container.
    let toml =
        p.s.read("stack.toml")
            .replace("max_rows = 10000", "max_rows = 5");
    p.s.write("stack.toml", &toml);

    p.s.cmd(["build", "postgres", "pgbouncer", "stackctl", "postgate"])
        .run()
        .success();
    p.s.cmd(["up", "postgate", "--wait-timeout", "180"])
        .run()
        .success();
    let ids = p.containers();
    assert_eq!(
        ids.keys().collect::<Vec<_>>(),
        ["migrate-1", "pgbouncer-1", "postgate-1", "postgres-1"]
    );

    // Tenants and tokens, run in the stack; twice is safe where it should be.
    p.s.cmd(["tenant", "create", "acme"])
        .run()
        .success()
        .stdout_contains("tenant acme created");
    p.s.cmd(["tenant", "create", "acme"])
        .run()
        .success()
        .stdout_contains("tenant acme already exists");
    p.s.cmd(["tenant", "list"])
        .run()
        .success()
        .stdout_contains("acme");
    let owner = token_of(
        &p.s.cmd([
            "token",
            "create",
            "--tenant",
            "acme",
            "--permissions",
            "SELECT,INSERT,UPDATE,DELETE,DDL",
            "--name",
            "owner",
        ])
        .run()
        .success()
        .stdout(),
    );
    let reader = token_of(
        &p.s.cmd(["gen-token", "acme", "reader", "--permissions", "SELECT"])
            .run()
            .success()
            .stdout(),
    );
    let list =
        p.s.cmd(["token", "list", "--tenant", "acme"])
            .run()
            .success()
            .stdout();
    assert!(
        list.contains("owner") && list.contains("reader") && !list.contains(&reader),
        "{list}"
    );
    p.s.cmd([
        "token",
        "create",
        "--tenant",
        "nope",
        "--permissions",
        "SELECT",
    ])
    .run()
    .failure();
    // A read token, then a write token, neither named (issue 15): each gets a free name, said on
    // stderr; stdout carries the token only.
    for (perms, name) in [
        ("SELECT", "default"),
        ("SELECT,INSERT,UPDATE,DELETE,DDL", "default-2"),
    ] {
        // The rendered Compose file gone (as after a change to stack.toml): `token create` renders
        // it again, and says so on stderr, not on the stdout a script captures (issue 14).
        std::fs::remove_file(p.s.dir.path().join("docker-compose.yml")).unwrap();
        let done =
            p.s.cmd([
                "token",
                "create",
                "--tenant",
                "acme",
                "--permissions",
                perms,
            ])
            .run()
            .success()
            .stderr_contains(&format!("named `{name}`"))
            .stderr_contains("wrote ");
        let token = token_of(&done.stdout());
        assert_eq!(done.stdout().trim(), token, "stdout is the token alone");
    }

    // Queries over the published loopback port.
    let (s, v) = query(
        gate_port,
        &owner,
        "CREATE TABLE notes (id int PRIMARY KEY, body text)",
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = query(
        gate_port,
        &owner,
        "INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 10) g",
    );
    assert_eq!((s, v["row_count"].as_u64()), (200, Some(10)), "{v}");
    let (s, v) = query(
        gate_port,
        &reader,
        "SELECT id, body FROM notes WHERE id = 3",
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rows"], serde_json::json!([[3, "n3"]]));
    let (s, v) = query(gate_port, &reader, "DELETE FROM notes");
    assert_eq!(s, 403, "{v}");
    // max_rows = 5 from stack.toml.
    let (s, v) = query(gate_port, &reader, "SELECT * FROM notes");
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("row_limit")),
        "{v}"
    );

    // The tenant login's sessions are PgBouncer's: its pool shows them.
    let pgbouncer = format!("{}-pgbouncer-1", p.name);
    let admin_pw = p.s.env_values()["POOLER_ADMIN_PASSWORD"].clone();
    let out = Command::new("docker")
        .args(["exec", "-e"])
        .arg(format!("PGPASSWORD={admin_pw}"))
        .args([
            &pgbouncer,
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            "6432",
            "-U",
            "pooler_admin",
            "-d",
            "pgbouncer",
            "-XAtc",
            "SHOW POOLS",
        ])
        .output()
        .expect("docker exec");
    let pools = String::from_utf8_lossy(&out.stdout);
    assert!(
        pools.contains("pgt_acme_s_login") && pools.contains("pgt_acme_owner_login"),
        "tenant logins not pooled by PgBouncer:\n{pools}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Revocation, in the stack.
    let prefix: String = reader.chars().take(11).collect();
    p.s.cmd(["token", "revoke", &prefix]).run().success();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _) = query(gate_port, &reader, "SELECT 1");
        if s == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the revoked token still works");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, _) = query(gate_port, &owner, "SELECT 1");
    assert_eq!(s, 200);
}
