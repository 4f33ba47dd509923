//! Workers through the HTTP app (`oneshot`): routing by host, limits with the other workers still
//! answering, isolation, fetch, binary bodies, cookies, 404s, a redeploy served within a second,
//! and jobs handed to workers.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use runner::http::{AppState, app};
use runner::queue::{Job, JobHandler};
use runner::registry::Registry;
use runner::serve::JsHandler;

use super::scripts::{API, BINARY, BOMB, COOKIES, FETCHER, HELLO, HELLO2, SPIN, THROWS, TIMERS};
use crate::support::{Pg, connect};

async fn send(router: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let (status, body) = send_bytes(router, req).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn send_bytes(router: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = router.clone().oneshot(req).await.expect("oneshot");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body.to_vec())
}

fn get(host: &str, path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", host)
        .body(Body::empty())
        .expect("request")
}

/// Hello and JSON API workers through the HTTP app, limits (CPU, memory, body size) with the
/// other workers still answering, isolation, 404s, and a redeploy served within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_serve_http_with_limits_and_hot_redeploy() {
    let pg = Pg::start().await;
    let c = connect(&pg.url).await;
    let deploy = |name: &'static str, src: &'static str, routes: &'static [&'static str]| {
        let c = &c;
        async move {
            let routes: Vec<String> = routes.iter().map(|s| s.to_string()).collect();
            c.query_one(
                "SELECT runner.deploy($1, $2, $3, '{}', '{\"GREETING\":\"env\"}')",
                &[&name, &src, &routes],
            )
            .await
            .expect("deploy")
            .get::<_, i32>(0)
        }
    };
    deploy("hello", HELLO, &[]).await;
    deploy("api", API, &["/api"]).await;
    deploy("spin", SPIN, &[]).await;
    deploy("bomb", BOMB, &[]).await;
    deploy("throws", THROWS, &[]).await;
    deploy("timers", TIMERS, &[]).await;
    deploy("fetcher", FETCHER, &[]).await;
    deploy("bin", BINARY, &[]).await;
    deploy("cookies", COOKIES, &[]).await;
    c.execute(
        "UPDATE runner.workers SET memory_mb = 16 WHERE name = 'bomb'",
        &[],
    )
    .await
    .expect("limit");

    let pool = runner::db::pool(&pg.url, 4).expect("pool");
    let registry = Registry::new(
        Some("workers.test".into()),
        runner::registry::Limits {
            wall: Duration::from_secs(10),
            body_bytes: 1024,
            ..Default::default()
        },
        None,
        // The test's own upstream lives on 127.0.0.2: the one loopback address allowed.
        Some(crate::support::services(
            &pool,
            vec!["127.0.0.2".parse().expect("ip")],
        )),
    );
    registry
        .reload_all(&**pool.get().await.expect("conn"))
        .await
        .expect("load");
    let bus = runner::notify::Bus::new();
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    tokio::spawn(runner::notify::listen(
        pg.url.clone(),
        bus.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(runner::registry::watch(
        registry.clone(),
        pool.clone(),
        bus.clone(),
        Duration::from_secs(30),
        shutdown.clone(),
    ));
    let router = app(AppState {
        workflows_token: None,
        pool: pool.clone(),
        registry: registry.clone(),
        metrics: Arc::new(runner::metrics::Metrics::default()),
        ready: Arc::new(AtomicBool::new(true)),
    });

    let (s, b) = send(&router, get("hello.workers.test", "/")).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "hello from env v1"));

    let req = Request::post("/api/items?q=42")
        .header("host", "anything.example")
        .header("user-agent", "t/1")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"a":[1,2]}"#))
        .expect("request");
    let (s, b) = send(&router, req).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"path": "/api/items", "q": "42", "method": "POST", "ua": "t/1",
            "body": {"a": [1, 2]}, "uuidOk": true, "bytes": 6, "roundtrip": "héllo",
            "b64": "aGkh", "unb64": "hi!", "leaked": "undefined"})
    );

    let (s, b) = send(&router, get("nobody.example", "/nowhere")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("\"not_found\""), "{b}");
    let (s, _) = send(&router, get("nope.workers.test", "/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Limits: each is stopped with its own error; hello keeps answering after each.
    let t = Instant::now();
    let (s, b) = send(&router, get("spin.workers.test", "/")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(b.contains("CPU time"), "{b}");
    println!(
        "limits: endless loop stopped after {:?} with: {b}",
        t.elapsed()
    );
    let (s, b) = send(&router, get("bomb.workers.test", "/")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(b.contains("memory"), "{b}");
    println!("limits: memory bomb stopped with: {b}");
    let big = Request::post("/")
        .header("host", "hello.workers.test")
        .body(Body::from(vec![b'x'; 4096]))
        .expect("request");
    let (s, b) = send(&router, big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    println!("limits: 4 KiB body over a 1 KiB limit refused with: {b}");
    let (s, b) = send(&router, get("throws.workers.test", "/")).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !b.contains("secret internal detail"),
        "script errors stay in the logs: {b}"
    );
    let (s, b) = send(&router, get("hello.workers.test", "/")).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "hello from env v1"));
    // The spinning worker gets a fresh runtime and is stopped again (not wedged).
    let (s, _) = send(&router, get("spin.workers.test", "/")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);

    // setTimeout (sleeping is not CPU time: 120 ms > the 50 ms CPU limit), setInterval until
    // cleared (three ticks, none after clearInterval) and env.QUEUE.send.
    let (s, b) = send(&router, get("timers.workers.test", "/")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.starts_with("slept true ticks 3 "), "{b}");
    let id: i64 = b
        .rsplit(' ')
        .next()
        .and_then(|x| x.parse().ok())
        .expect("job id");
    let r = c
        .query_one("SELECT queue, payload, run_at > now() + interval '3 seconds' FROM runner.jobs WHERE id = $1", &[&id])
        .await
        .expect("job from env.QUEUE");
    assert_eq!(r.get::<_, String>(0), "from-js");
    assert_eq!(
        r.get::<_, serde_json::Value>(1),
        serde_json::json!({"from": "js"})
    );
    assert!(r.get::<_, bool>(2), "delaySeconds is applied");
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM runner.jobs WHERE queue = 'timers'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        n, 1,
        "env.QUEUE.send defaults to the queue named after the worker"
    );

    // Outbound fetch: the allowed upstream answers; loopback, private, metadata and a
    // hostname resolving to loopback are refused before any connection is made.
    let upstream = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let up = upstream.local_addr().expect("addr");
    let up_app = axum::Router::new()
        .route(
            "/ping",
            axum::routing::get(|h: axum::http::HeaderMap| async move {
                format!(
                    "pong {}",
                    h.get("x-from").and_then(|v| v.to_str().ok()).unwrap_or("-")
                )
            }),
        )
        .route(
            // The bytes it was sent, reversed, then 0xC3 (which is not UTF-8 on its own).
            "/bytes",
            axum::routing::post(|b: axum::body::Bytes| async move {
                let mut v: Vec<u8> = b.iter().rev().copied().collect();
                v.push(0xc3);
                v
            }),
        );
    tokio::spawn(async move { axum::serve(upstream, up_app).await });
    let fetch_via = |target: String| {
        let router = router.clone();
        async move {
            let path = format!("/?u={}", url_escape(&target));
            send(&router, get("fetcher.workers.test", &path)).await
        }
    };
    let (s, b) = fetch_via(format!("http://{up}/ping")).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "ok 200 pong worker"));
    // Bytes that are not UTF-8 cross every way unchanged: into the worker, out of it, and
    // through fetch in both directions; text still reaches it as text.
    for sent in [
        vec![0x00, 0xff, 0xc3, 0x28, 0x80],
        "héllo".as_bytes().to_vec(),
    ] {
        let req = Request::post("/")
            .header("host", "bin.workers.test")
            .body(Body::from(sent.clone()))
            .expect("request");
        let (s, b) = send_bytes(&router, req).await;
        let mut want = sent.clone();
        want.push(0xfe);
        assert_eq!((s, b), (StatusCode::OK, want), "bytes {sent:?}");
    }
    // Each Set-Cookie goes out as its own header, commas and order intact.
    let resp = router
        .clone()
        .oneshot(get("cookies.workers.test", "/"))
        .await
        .expect("oneshot");
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect();
    let first = "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/";
    assert_eq!(cookies, [first, "b=2; HttpOnly"]);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["list"], serde_json::json!([first, "b=2; HttpOnly"]));
    assert_eq!(v["joined"], format!("{first}, b=2; HttpOnly"));
    let path = format!("/fetch?u={}", url_escape(&format!("http://{up}/bytes")));
    let (s, b) = send_bytes(&router, get("bin.workers.test", &path)).await;
    assert_eq!(
        (s, b),
        (StatusCode::OK, vec![10, 128, 255, 0, 0xc3]),
        "fetch sends and receives bytes"
    );
    for target in [
        format!("http://127.0.0.1:{}/ping", up.port()),
        "http://10.0.0.1/".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://localhost:{}/ping", up.port()),
        format!("https://127.0.0.1:{}/", up.port()),
        "https://10.0.0.1/".to_string(),
        "https://169.254.169.254/latest/meta-data/".to_string(),
        format!("https://localhost:{}/", up.port()),
    ] {
        let (s, b) = fetch_via(target.clone()).await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{target}: {b}");
        assert!(b.contains("to ") && b.contains("refused"), "{target}: {b}");
        println!("fetch {target} -> {b}");
    }
    // https:// speaks TLS to the checked address: an allowed listener sees a TLS ClientHello
    // (record type 0x16, version 3.x) and, as it is no TLS server, the fetch fails in TLS.
    let sniffer = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let sn = sniffer.local_addr().expect("addr");
    let first = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut c, _) = sniffer.accept().await.expect("accept");
        let mut head = [0u8; 3];
        c.read_exact(&mut head).await.expect("read");
        head
    });
    let (s, b) = fetch_via(format!("https://{sn}/")).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert!(b.contains("TLS with 127.0.0.2"), "{b}");
    let head = first.await.expect("sniffer");
    assert_eq!((head[0], head[1]), (0x16, 0x03), "a TLS handshake record");
    println!("fetch https://{sn}/ -> TLS ClientHello sent, then: {b}");

    // Redeploy: served within a second through LISTEN/NOTIFY.
    let t = Instant::now();
    deploy("hello", HELLO2, &[]).await;
    loop {
        let (_, b) = send(&router, get("hello.workers.test", "/")).await;
        if b == "hello v2" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "redeploy not served within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "redeploy: new version served {:?} after runner.deploy()",
        t.elapsed()
    );

    let (s, b) = send(&router, get("localhost", "/health")).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "ok\n"));
    let (s, _) = send(&router, get("localhost", "/ready")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = send(&router, get("localhost", "/metrics")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        b.contains("runner_http_requests_total{worker=\"spin\",status=\"503\"} 2"),
        "{b}"
    );

    // Queue and cron triggers through the same workers.
    let handler = JsHandler {
        registry: registry.clone(),
        pool: pool.clone(),
    };
    c.execute(
        "UPDATE runner.workers SET queues = '{jobs}' WHERE name = 'api'",
        &[],
    )
    .await
    .expect("bind queue");
    let t = Instant::now();
    while registry.for_queue("jobs").is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "queue binding not picked up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = |id: i64, payload: serde_json::Value, queue: &str| Job {
        id,
        queue: queue.into(),
        payload,
        attempts: 1,
        max_attempts: 5,
    };
    let res = handler
        .handle(&[
            job(1, serde_json::json!({"ok": 1}), "jobs"),
            job(2, serde_json::json!({"fail": true}), "jobs"),
        ])
        .await;
    assert_eq!(res[0], Ok(()));
    assert!(res[1].is_err());
    let res = handler
        .handle(&[job(3, serde_json::json!({"worker": "api", "cron": "* * * * *", "scheduledTime": "2026-01-01T00:00:00Z"}), "cron")])
        .await;
    assert_eq!(res, vec![Ok(())]);
    let res = handler
        .handle(&[job(4, serde_json::json!({"worker": "ghost"}), "cron")])
        .await;
    assert!(res[0].is_err());
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
