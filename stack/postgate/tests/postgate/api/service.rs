//! The service endpoints (`/health`, `/ready`, `/metrics`), and a revocation that reaches every
//! replica within a second.

use crate::support::{Harness, post_to};
use axum::http::StatusCode;
use postgate::admin;
use serde_json::json;

#[tokio::test]
async fn health_ready_metrics() {
    let h = Harness::new(true).await;
    assert_eq!(h.get("/health").await.0, StatusCode::OK);
    assert_eq!(h.get("/ready").await.0, StatusCode::OK);
    h.tenant("m").await;
    let t = h.token("m", "SELECT").await;
    h.ok(&t, "SELECT 1").await;
    let (s, body) = h.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("postgate_requests_total{endpoint=\"query\",outcome=\"ok\"} 1"),
        "{body}"
    );
}

/// `postgate_rows_returned`: one observation per successful statement, labelled by endpoint,
/// counting the rows returned; a failed query observes nothing.
#[tokio::test]
async fn rows_returned_histogram_counts_each_statements_rows() {
    let h = Harness::new(true).await;
    h.tenant("rows").await;
    let t = h.token("rows", "SELECT").await;
    let v = h.ok(&t, "SELECT g FROM generate_series(1, 3) g").await;
    assert_eq!(v["row_count"], 3, "{v}");
    // A failed query is no observation.
    let (s, v) = h.query(&t, "SELECT 1/0", json!([])).await;
    assert_ne!(s, StatusCode::OK, "{v}");
    let (s, v) = h
        .post(
            "/batch",
            &t,
            &json!({"statements": [
                {"sql": "SELECT g FROM generate_series(1, 12) g"},
                {"sql": "SELECT 1 WHERE false"},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, body) = h.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    let want = [
        // /query: one statement of 3 rows, in every bucket from le="5" up.
        "postgate_rows_returned_bucket{endpoint=\"query\",le=\"1\"} 0",
        "postgate_rows_returned_bucket{endpoint=\"query\",le=\"5\"} 1",
        "postgate_rows_returned_bucket{endpoint=\"query\",le=\"+Inf\"} 1",
        "postgate_rows_returned_sum{endpoint=\"query\"} 3",
        "postgate_rows_returned_count{endpoint=\"query\"} 1",
        // /batch: its two statements, 12 rows and none.
        "postgate_rows_returned_bucket{endpoint=\"batch\",le=\"0\"} 1",
        "postgate_rows_returned_bucket{endpoint=\"batch\",le=\"10\"} 1",
        "postgate_rows_returned_bucket{endpoint=\"batch\",le=\"50\"} 2",
        "postgate_rows_returned_sum{endpoint=\"batch\"} 12",
        "postgate_rows_returned_count{endpoint=\"batch\"} 2",
    ];
    for line in want {
        assert!(
            body.lines().any(|l| l == line),
            "no line {line:?} in:\n{body}"
        );
    }
}

#[tokio::test]
async fn revocation_reaches_every_replica_within_a_second() {
    let h = Harness::new(true).await;
    let replica = h.replica();
    h.tenant("rev").await;
    let token = h.token("rev", "SELECT").await;
    let body = json!({"sql": "SELECT 1"}).to_string();
    // Both replicas have served (and cached) the token.
    for _ in 0..3 {
        assert_eq!(
            h.post_raw("/query", &token, body.clone()).await.0,
            StatusCode::OK
        );
        assert_eq!(
            post_to(&replica, "/query", &token, body.clone()).await.0,
            StatusCode::OK
        );
    }
    let prefix: String = token.chars().take(11).collect();
    admin::revoke_token(&h.admin().await, &prefix)
        .await
        .unwrap();
    let revoked = std::time::Instant::now();
    loop {
        let a = h.post_raw("/query", &token, body.clone()).await.0;
        let b = post_to(&replica, "/query", &token, body.clone()).await.0;
        if a == StatusCode::UNAUTHORIZED && b == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(1),
            "still accepted {:?} after revocation ({a}, {b})",
            revoked.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And it stays revoked (no stale cache entry comes back).
    for _ in 0..5 {
        assert_eq!(
            post_to(&replica, "/query", &token, body.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}
