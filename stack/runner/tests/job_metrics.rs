//! `runner_job_duration_seconds`: jobs run by a consumer (the deployed JavaScript worker's
//! `queue()` handler, against the real database) show in `/metrics` under their queue and
//! outcome: done, retry, dead.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use runner::http::{AppState, app};
use runner::queue::{ConsumerConfig, run_consumer};
use runner::serve::JsHandler;

use crate::support::{Pg, connect};

/// Acks a message whose body says `ok`, asks for a retry of any other.
const CONSUMER: &str = r#"export default {
  async queue(batch) {
    for (const m of batch.messages) { if (m.body.ok) m.ack(); else m.retry(); }
  },
};"#;

/// `GET /metrics` through the runner's router.
async fn scrape(router: &axum::Router) -> String {
    let req = Request::get("/metrics")
        .header("host", "localhost")
        .body(Body::empty())
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("oneshot");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// The value of the exposition line that starts with `series` and a space.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_show_in_the_job_duration_histogram_by_outcome() {
    let pg = Pg::start().await;
    let c = connect(&pg.url).await;
    c.execute(
        "SELECT runner.deploy('hist', $1, queues => ARRAY['hist'])",
        &[&CONSUMER],
    )
    .await
    .expect("deploying the consumer worker");
    // One job that succeeds; one that fails on its only attempt (dead at once); one that fails
    // twice (a retry after a backoff of 1-2 s, then dead).
    c.execute(
        "SELECT runner.enqueue('hist', p, max_attempts => m)
           FROM (VALUES ('{\"ok\": true}'::jsonb, 5), ('{}', 1), ('{}', 2)) AS v(p, m)",
        &[],
    )
    .await
    .expect("enqueueing");

    let pool = runner::db::pool(&pg.url, 2).expect("pool");
    let registry = crate::support::loaded_registry(&pool).await;
    let metrics = Arc::new(runner::metrics::Metrics::default());
    let router = app(AppState {
        workflows_token: None,
        pool: pool.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
        ready: Arc::new(AtomicBool::new(true)),
    });
    let before = scrape(&router).await;
    assert!(
        !before.contains("runner_job_duration_seconds_count"),
        "no series before a job ran:\n{before}"
    );

    let shutdown = CancellationToken::new();
    let mut cfg = ConsumerConfig::new("hist", "hist-test");
    cfg.poll = Duration::from_millis(100);
    let consumer = tokio::spawn(run_consumer(
        pool.clone(),
        cfg,
        Arc::new(JsHandler {
            registry,
            pool: pool.clone(),
        }),
        Arc::new(Notify::new()),
        metrics,
        shutdown.clone(),
    ));

    let count = |text: &str, outcome: &str| {
        sample(
            text,
            &format!(r#"runner_job_duration_seconds_count{{queue="hist",outcome="{outcome}"}}"#),
        )
    };
    let t = Instant::now();
    let text = loop {
        let text = scrape(&router).await;
        if count(&text, "dead") == Some(2.0) {
            break text;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "two dead jobs not observed within 20 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    shutdown.cancel();
    consumer.await.expect("consumer");

    assert_eq!(count(&text, "done"), Some(1.0), "{text}");
    assert_eq!(count(&text, "retry"), Some(1.0), "{text}");
    // Each observation is in the +Inf bucket, and its duration is in the sum.
    for (outcome, n) in [("done", 1.0), ("retry", 1.0), ("dead", 2.0)] {
        let inf = format!(
            r#"runner_job_duration_seconds_bucket{{queue="hist",outcome="{outcome}",le="+Inf"}}"#
        );
        assert_eq!(sample(&text, &inf), Some(n), "{inf} in:\n{text}");
        let sum = format!(r#"runner_job_duration_seconds_sum{{queue="hist",outcome="{outcome}"}}"#);
        let sum = sample(&text, &sum).unwrap_or_else(|| panic!("no {sum} in:\n{text}"));
        assert!(sum > 0.0 && sum < 20.0, "{outcome}: sum {sum}");
    }
    // The database agrees: one job done (recorded with the consumer's last claim or on its
    // shutdown), two dead.
    let states: Vec<(String, i64)> = c
        .query(
            "SELECT state::text, count(*) FROM runner.jobs WHERE queue = 'hist'
              GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("job states")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        states,
        [("dead".to_string(), 2), ("done".to_string(), 1)],
        "{text}"
    );
}
