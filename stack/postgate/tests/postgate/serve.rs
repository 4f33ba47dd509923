//! The binary: `serve` on a real listener with shutdown, `healthcheck`, and the admin CLI.

use crate::support::{Harness, PEPPER, raw_http, spawn_serve};
use postgate::http::serve;
use serde_json::json;
use std::process::Command;
use tokio_util::sync::CancellationToken;

fn postgate(h: &Harness, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postgate"))
        .args(args)
        .env("POSTGATE_ADMIN_DATABASE_URL", h.admin_url())
        .env("POSTGATE_DATABASE_URL", h.service_url())
        .env(
            "POSTGATE_TOKEN_PEPPER",
            std::str::from_utf8(PEPPER).unwrap(),
        )
        .output()
        .expect("running postgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_healthcheck_and_admin_cli() {
    let h = Harness::new(true).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, h.state.clone(), shutdown.clone()));

    let check = |addr: String| async move {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_postgate"))
                .arg("healthcheck")
                .env("POSTGATE_LISTEN", addr)
                .status()
                .expect("healthcheck")
                .success()
        })
        .await
        .unwrap()
    };
    assert!(
        check(addr.clone()).await,
        "healthcheck against a running server"
    );

    // The admin CLI, end to end.
    let (ok, out, err) = postgate(&h, &["tenant", "create", "cli"]);
    assert!(ok, "{out}{err}");
    let (ok, token, err) = postgate(
        &h,
        &[
            "token",
            "create",
            "--tenant",
            "cli",
            "--permissions",
            "SELECT",
            "--name",
            "reader",
            "--expires",
            "30d",
        ],
    );
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("pg_") && !err.contains(&token));
    let (ok, _, err) = postgate(
        &h,
        &[
            "gen-token",
            "cli",
            "writer",
            "--permissions",
            "SELECT,INSERT",
        ],
    );
    assert!(ok, "{err}");
    let (ok, list, _) = postgate(&h, &["token", "list", "--tenant", "cli"]);
    assert!(
        ok && list.contains("reader") && list.contains("writer") && !list.contains(&token),
        "{list}"
    );
    assert!(list.contains("expires: 20"), "{list}");
    let (ok, _, err) = postgate(
        &h,
        &["token", "create", "--tenant", "cli", "--permissions", "DDL"],
    );
    assert!(!ok && err.contains("DDL"), "{err}");

    // Over real HTTP.
    let client_req = query_request(&token, "SELECT 41 + 1 AS n");
    let answer = raw_http(&addr, &client_req).await;
    assert!(
        answer.starts_with("HTTP/1.0 200") && answer.contains("[[42]]"),
        "{answer}"
    );

    let prefix: String = token.chars().take(11).collect();
    let (ok, _, err) = postgate(&h, &["token", "revoke", &prefix]);
    assert!(ok, "{err}");
    // Revocation reaches the cache through LISTEN/NOTIFY: within a second, not necessarily at
    // once (the timing itself is `revocation_reaches_every_replica_within_a_second`).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let answer = loop {
        let answer = raw_http(&addr, &client_req).await;
        if answer.starts_with("HTTP/1.0 401") || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(answer.starts_with("HTTP/1.0 401"), "{answer}");

    shutdown.cancel();
    server.await.unwrap().unwrap();
    assert!(!check(addr).await, "healthcheck after shutdown");
}

fn query_request(token: &str, sql: &str) -> String {
    let body = json!({ "sql": sql }).to_string();
    format!(
        "POST /query HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn revocation_reaches_two_postgate_processes_through_the_pooler() {
    let h = Harness::new(true).await;
    let (a, b) = (spawn_serve(&h).await, spawn_serve(&h).await);
    let (ok, _, err) = postgate(&h, &["tenant", "create", "twoproc"]);
    assert!(ok, "{err}");
    let (ok, token, err) = postgate(
        &h,
        &[
            "token",
            "create",
            "--tenant",
            "twoproc",
            "--permissions",
            "SELECT",
        ],
    );
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    // The tenant login is in no user list: PgBouncer found it through its auth_query.
    let req = query_request(&token, "SELECT current_user::text AS u, 7 AS n");
    for p in [&a, &b] {
        for _ in 0..3 {
            let answer = raw_http(&p.addr, &req).await;
            assert!(
                answer.starts_with("HTTP/1.0 200") && answer.contains("[[\"pgt_twoproc_s\",7]]"),
                "{answer}"
            );
        }
    }
    let prefix: String = token.chars().take(11).collect();
    let (ok, _, err) = postgate(&h, &["token", "revoke", &prefix]);
    assert!(ok, "{err}");
    let revoked = std::time::Instant::now();
    loop {
        let ra = raw_http(&a.addr, &req).await;
        let rb = raw_http(&b.addr, &req).await;
        if ra.starts_with("HTTP/1.0 401") && rb.starts_with("HTTP/1.0 401") {
            break;
        }
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(1),
            "still accepted {:?} after revocation:\n{ra}\n{rb}",
            revoked.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
