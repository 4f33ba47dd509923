//! Where `env.QUEUE.send(body)` goes without `{ queue }`: to the worker's own consumed queue when
//! it consumes exactly one (a worker deployed with `--queue notesq` must not enqueue into a queue
//! named after itself, which nothing consumes), else to the queue named after the worker; and
//! `runner queue stats` marks a queue with waiting jobs and no consumer.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use runner::http::{AppState, app};

use crate::support::{Pg, connect};

/// Sends one message with no queue named, and consumes whatever its queue delivers.
const SENDER: &str = r#"export default {
  async fetch(req, env) {
    const { id } = await env.QUEUE.send({ note: 'hello' });
    return new Response(`sent ${id}`);
  },
  async queue(batch) { for (const m of batch.messages) m.ack(); },
};"#;

async fn post(router: &axum::Router, host: &str) -> (StatusCode, String) {
    let req = Request::post("/")
        .header("host", host)
        .body(Body::empty())
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("oneshot");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `runner queue stats [--json]` (the real binary) against the test database.
fn queue_stats(url: &str, json: bool) -> String {
    let mut args = vec!["queue", "stats"];
    if json {
        args.push("--json");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(&args)
        .env("RUNNER_DATABASE_URL", url)
        .output()
        .expect("running runner queue stats");
    assert!(
        out.status.success(),
        "runner queue stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_defaults_to_the_one_consumed_queue_and_stats_mark_unconsumed_queues() {
    let pg = Pg::start().await;
    let c = connect(&pg.url).await;
    // `api` consumes exactly one queue; `lonely` consumes none; `two` consumes two.
    for (name, queues) in [
        ("api", vec!["notesq"]),
        ("lonely", vec![]),
        ("two", vec!["q-a", "q-b"]),
    ] {
        let queues: Vec<String> = queues.into_iter().map(String::from).collect();
        c.query_one(
            "SELECT runner.deploy($1, $2, '{}', $3)",
            &[&name, &SENDER, &queues],
        )
        .await
        .expect("deploy");
    }

    let pool = runner::db::pool(&pg.url, 2).expect("pool");
    let registry = crate::support::loaded_registry(&pool).await;
    let router = app(AppState {
        workflows_token: None,
        pool: pool.clone(),
        registry,
        metrics: Arc::new(runner::metrics::Metrics::default()),
        ready: Arc::new(AtomicBool::new(true)),
    });
    for host in ["api", "lonely", "two"] {
        let (s, b) = post(&router, &format!("{host}.workers.test")).await;
        assert_eq!(s, StatusCode::OK, "{host}: {b}");
        assert!(b.starts_with("sent "), "{host}: {b}");
    }

    let rows = c
        .query(
            "SELECT queue, count(*) FROM runner.jobs GROUP BY queue ORDER BY queue",
            &[],
        )
        .await
        .expect("jobs");
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        [
            ("lonely".to_string(), 1),
            ("notesq".to_string(), 1),
            ("two".to_string(), 1),
        ],
        "api's message went to notesq (its one consumed queue), not to `api`"
    );

    // Stats: who consumes each queue, and which hold waiting jobs nobody will take.
    let stats: serde_json::Value =
        serde_json::from_str(&queue_stats(&pg.url, true)).expect("stats JSON");
    let row = |q: &str| {
        stats
            .as_array()
            .expect("array")
            .iter()
            .find(|r| r["queue"] == q)
            .unwrap_or_else(|| panic!("no {q} in {stats:#}"))
            .clone()
    };
    assert_eq!(row("notesq")["consumers"], serde_json::json!(["api"]));
    assert_eq!(row("notesq")["no_consumer"], false);
    for q in ["lonely", "two"] {
        assert_eq!(row(q)["consumers"], serde_json::json!([]), "{q}");
        assert_eq!(row(q)["no_consumer"], true, "{q}");
    }
    let table = queue_stats(&pg.url, false);
    let line = |q: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(q))
            .unwrap_or_else(|| panic!("no {q} in\n{table}"))
            .to_string()
    };
    assert!(line("lonely").contains("NO CONSUMER"), "{table}");
    assert!(line("notesq").contains("api"), "{table}");
    assert!(!line("notesq").contains("NO CONSUMER"), "{table}");
    assert!(
        table.contains("no worker consumes lonely, two"),
        "a note says what to do:\n{table}"
    );
}
