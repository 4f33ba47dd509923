//! Limits and errors: bodies, rows, response size, timeouts and batches bounded with a clear
//! error code and nothing internal in it; the per-token rate limit.

use crate::support::{Harness, code, test_limits};
use axum::http::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn limits_and_errors() {
    let h = Harness::new(true).await;
    h.tenant("lim").await;
    let ddl = h.token("lim", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    let l = test_limits();
    // Body size.
    let big = format!("{{\"sql\": \"SELECT '{}'\"}}", "x".repeat(l.max_body_bytes));
    let (s, v) = h.post_raw("/query", &ddl, big).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    // Row count.
    let (s, v) = h
        .query(&ddl, "SELECT generate_series(1, 5000)", json!([]))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "row_limit")
    );
    // Response bytes.
    let (s, v) = h
        .query(
            &ddl,
            "SELECT repeat('x', 1000) FROM generate_series(1, 900)",
            json!([]),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "response_too_large")
    );
    // Statement timeout.
    let (s, v) = h.query(&ddl, "SELECT pg_sleep(10)", json!([])).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::REQUEST_TIMEOUT, "statement_timeout")
    );
    assert_eq!(v["error"]["sqlstate"], json!("57014"));
    // Batch size.
    let many: Vec<Value> = (0..=l.max_batch)
        .map(|_| json!({"sql": "SELECT 1"}))
        .collect();
    let (s, v) = h.post("/batch", &ddl, &json!({ "statements": many })).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_many_statements")
    );
    // A limit rolls the transaction back: the insert before it is gone.
    h.ok(&ddl, "CREATE TABLE w (i int)").await;
    let (s, _) = h
        .post(
            "/batch",
            &ddl,
            &json!({"statements": [
                {"sql": "INSERT INTO w VALUES (1)"},
                {"sql": "SELECT generate_series(1, 5000)"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        h.ok(&ddl, "SELECT count(*) FROM w").await["rows"],
        json!([["0"]])
    );
    // Errors: stable code, SQLSTATE, message, position; nothing internal.
    let (s, v) = h.query(&ddl, "SELECT nope FROM w", json!([])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], json!("sql_error"));
    assert_eq!(v["error"]["sqlstate"], json!("42703"));
    assert_eq!(v["error"]["position"], json!(8));
    let (s, v) = h.query(&ddl, "SELEC 1", json!([])).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "syntax_error"));
    let (s, v) = h.query(&ddl, "SELECT $1::int", json!([])).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "bad_request"),
        "{v}"
    );
    let (s, _) = h.post_raw("/query", &ddl, "{not json".into()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let text = v.to_string();
    assert!(!text.contains("postgres://") && !text.contains("pgt_") && !text.contains("127.0.0.1"));
}

#[tokio::test]
async fn rate_limit_per_token() {
    let limits = postgate::Limits {
        rate_per_token: 5,
        ..test_limits()
    };
    let h = Harness::with_limits(true, limits).await;
    h.tenant("rl").await;
    let a = h.token("rl", "SELECT").await;
    let b = h.token("rl", "SELECT").await;
    let mut limited = 0;
    for _ in 0..15 {
        let (s, v) = h.query(&a, "SELECT 1", json!([])).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(code(&v), "rate_limited");
            limited += 1;
        }
    }
    assert!(limited >= 3, "only {limited} of 15 rate-limited (burst 10)");
    // Another token has its own bucket.
    h.ok(&b, "SELECT 1").await;
}
