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

use crate::support::{Pg, Proc, connect};

const HELLO: &str = r#"export default { fetch(req, env) { return new Response(`hello from ${env.GREETING} v1`); } };"#;
const HELLO2: &str = r#"export default { fetch() { return new Response("hello v2"); } };"#;
const API: &str = r#"
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const body = request.method === 'POST' ? await request.json() : null;
    await Promise.resolve();
    const bytes = new TextEncoder().encode('héllo');
    console.log('api call', { path: url.pathname });
    return Response.json({
      path: url.pathname,
      q: url.searchParams.get('q'),
      method: request.method,
      ua: request.headers.get('user-agent'),
      body,
      uuidOk: /^[0-9a-f-]{36}$/.test(crypto.randomUUID()),
      bytes: bytes.length,
      roundtrip: new TextDecoder().decode(bytes),
      b64: btoa('hi!'),
      unb64: atob('aGkh'),
      leaked: typeof globalThis.secretOfSpin,
    }, { status: 201, headers: { 'x-worker': 'api' } });
  },
  async queue(batch) {
    for (const m of batch.messages) { if (m.body.fail) m.retry(); else m.ack(); }
  },
  async scheduled(event) { if (!event.cron) throw new Error('no cron'); },
};"#;
const SPIN: &str = r#"globalThis.secretOfSpin = 42; export default { fetch() { for (;;) {} } };"#;
const BOMB: &str =
    r#"export default { fetch() { const a = []; for (;;) a.push(new Array(100000).fill(1)); } };"#;
const TIMERS: &str = r#"export default { async fetch(req, env) {
  const t = Date.now();
  await new Promise((r) => setTimeout(r, 120));
  const ticks = await new Promise((r) => {
    let n = 0;
    const every = setInterval(() => { n += 1; if (n === 3) { clearInterval(every); setTimeout(() => r(n), 50); } }, 10);
  });
  const { id } = await env.QUEUE.send({ from: 'js' }, { queue: 'from-js', delaySeconds: 5 });
  await env.QUEUE.send({ default: true });
  return new Response(`slept ${Date.now() - t >= 120} ticks ${ticks} ${id}`);
} };"#;
const FETCHER: &str = r#"export default { async fetch(req) {
  const target = new URL(req.url).searchParams.get('u');
  try {
    const r = await fetch(target, { headers: { 'x-from': 'worker' } });
    return new Response(`ok ${r.status} ${await r.text()}`);
  } catch (e) {
    return new Response(`refused: ${e.message}`, { status: 502 });
  }
} };"#;
/// Bytes in and out: the request's bytes plus 0xFE; `/fetch` POSTs bytes upstream and answers
/// with the bytes that came back.
const BINARY: &str = r#"export default { async fetch(req) {
  const url = new URL(req.url);
  if (url.pathname === '/fetch') {
    const r = await fetch(url.searchParams.get('u'), { method: 'POST', body: new Uint8Array([0, 255, 128, 10]) });
    return new Response(await r.arrayBuffer(), { headers: { 'content-type': 'application/octet-stream' } });
  }
  const b = await req.bytes();
  const out = new Uint8Array(b.length + 1); out.set(b); out[b.length] = 0xfe;
  return new Response(out, { headers: { 'content-type': 'application/octet-stream' } });
} };"#;
/// Two cookies, one with the comma of an Expires date, through a copied `Headers`.
const COOKIES: &str = r#"export default { fetch() {
  const h = new Headers();
  h.append('set-cookie', 'a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/');
  h.append('Set-Cookie', 'b=2; HttpOnly');
  const copy = new Headers(h);
  return new Response(JSON.stringify({ list: copy.getSetCookie(), joined: copy.get('set-cookie') }), { headers: copy });
} };"#;
const THROWS: &str =
    r#"export default { fetch() { throw new Error('secret internal detail'); } };"#;

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

/// One HTTP/1.1 request over a fresh connection (closed after the answer); the raw response.
fn raw_get(addr: &str, host: &str) -> std::io::Result<String> {
    raw_get_with(addr, host, "")
}

/// [`raw_get`] with extra header lines (each ending in `\r\n`).
fn raw_get_with(addr: &str, host: &str, headers: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        c,
        "GET / HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    c.read_to_string(&mut out)?;
    Ok(out)
}

/// SIGTERM while a request is in flight: the request is answered, the process exits cleanly,
/// and the port takes no new connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let pg = Pg::start().await;
    let c = connect(&pg.url).await;
    c.execute(
        "SELECT runner.deploy('slow', $1)",
        &[&r#"export default { async fetch() {
            await new Promise((r) => setTimeout(r, 800));
            return new Response('finished');
        } };"#],
    )
    .await
    .expect("deploy slow");
    let mut p = Proc::spawn(
        "sigterm-http",
        &["serve", "--id", "sigterm-http"],
        &[
            ("RUNNER_DATABASE_URL", pg.url.as_str()),
            ("RUNNER_LISTEN", "127.0.0.1:0"),
            ("RUNNER_WORKERS_DOMAIN", "workers.test"),
            ("RUNNER_GRACE_SECS", "5"),
        ],
    );
    let addr = p.listen_addr(Duration::from_secs(10));
    let first = raw_get(&addr, "slow.workers.test").expect("first request");
    assert!(first.contains("finished"), "{first}");
    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || raw_get(&addr, "slow.workers.test"))
    };
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t = Instant::now();
    let status = p.terminate(Duration::from_secs(10));
    let answer = in_flight
        .join()
        .expect("request thread")
        .expect("the in-flight request is answered");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("finished"),
        "{answer}"
    );
    assert!(status.success(), "exit status {status:?}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "no new connections after shutdown"
    );
    println!(
        "shutdown: SIGTERM during an 800 ms request; it was answered and the runner exited cleanly after {:?}",
        t.elapsed()
    );
}

/// The token pepper of the runners these tests start with `env.DB`.
const PEPPER: &str = "runner-test-pepper-0123456789";

/// postgate's schema, then `manifest` deployed with `env.DB` (its tenant and token made under
/// [`PEPPER`]); returns the secrets key (hex) the runner must be given.
async fn deploy_with_db(c: &mut tokio_postgres::Client, manifest: serde_json::Value) -> String {
    c.batch_execute(postgate::schema::SQL)
        .await
        .expect("postgate's schema");
    let key_hex = "6b".repeat(32);
    let key = runner::secrets::SecretsKey::from_hex(&key_hex).expect("key");
    let m: runner::admin::Manifest = serde_json::from_value(manifest).expect("manifest");
    runner::admin::deploy(c, &m, Some(&key), Some(PEPPER.as_bytes()))
        .await
        .expect("deploy with env.DB");
    key_hex
}

/// `env.DB` when postgate's database is down: the worker gets postgate's generic error, and the
/// detail postgate keeps from it is in the runner's log as a JSON line with the worker's name,
/// version and request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_db_failures_are_logged_with_the_worker_and_request() {
    let pg = Pg::start().await;
    let mut c = connect(&pg.url).await;
    let key_hex = deploy_with_db(
        &mut c,
        serde_json::json!({
        "name": "dbw",
        "source": r#"export default { async fetch(req, env) {
            try { await env.DB.query('SELECT 1'); return new Response('reached'); }
            catch (e) { return new Response(`${e.code}: ${e.message}`, { status: 503 }); }
        } };"#,
        "db": {"tenant": "dbw_app", "permissions": ["SELECT"]},
        }),
    )
    .await;
    // postgate's side of env.DB points at a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let postgate_url =
        format!("host=127.0.0.1 port={closed} user=postgres password=x dbname=postgres");
    let p = Proc::spawn(
        "env-db-log",
        &["serve", "--id", "env-db-log"],
        &[
            ("RUNNER_DATABASE_URL", pg.url.as_str()),
            ("RUNNER_LISTEN", "127.0.0.1:0"),
            ("RUNNER_WORKERS_DOMAIN", "workers.test"),
            ("RUNNER_SECRETS_KEY", key_hex.as_str()),
            ("POSTGATE_TOKEN_PEPPER", PEPPER),
            ("POSTGATE_DATABASE_URL", postgate_url.as_str()),
        ],
    );
    let addr = p.listen_addr(Duration::from_secs(10));
    let answer =
        raw_get_with(&addr, "dbw.workers.test", "x-request-id: rid-env-db-1\r\n").expect("request");
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("unavailable: "),
        "the worker sees postgate's generic error: {answer}"
    );
    assert!(
        !answer.contains("connecting"),
        "the detail does not reach the worker: {answer}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = std::fs::read_to_string(&p.log).unwrap_or_default();
        let found = log.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["request_id"] == "rid-env-db-1" && v["level"] == "error").then_some(v)
        });
        if let Some(v) = found {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no error line for the request in: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(line["worker"], "dbw", "{line}");
    assert_eq!(line["version"], 1, "{line}");
    assert!(
        line["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("postgate")),
        "{line}"
    );
    let msg = line["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("authenticating") && msg.contains("error connecting to server"),
        "postgate's detail is logged: {line}"
    );
    println!("env.DB failure logged: {line}");
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

/// `env.DB` when the invocation is cut off while a query is in flight (issue 21): by its HTTP
/// client (a reset connection during a 1.5 s query) and by its CPU limit (an endless loop right
/// after a query). Then 50 sequential requests for different ids each get exactly their own row:
/// no pooled session of postgate's library is left one answer behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_db_cut_off_mid_query_leaves_no_answer_behind() {
    use std::io::{Read as _, Write as _};
    let pg = Pg::start().await;
    let mut c = connect(&pg.url).await;
    let key_hex = deploy_with_db(
        &mut c,
        serde_json::json!({
        "name": "dbcut",
        "source": r#"export default { async fetch(req, env) {
            const u = new URL(req.url);
            const id = Number(u.searchParams.get('id'));
            const slow = u.searchParams.get('slow');
            const sql = slow
                ? `select id, body from items where id = $1 and pg_sleep(${Number(slow)}) is not null`
                : 'select id, body from items where id = $1';
            const r = await env.DB.query(sql, [id]);
            if (u.searchParams.get('spin')) { for (;;) {} }
            return Response.json(r.rows);
        } };"#,
        "db": {"tenant": "dbcut", "permissions": ["SELECT"]},
        "limits": {"cpu_ms": 200},
        }),
    )
    .await;
    c.batch_execute(
        "CREATE TABLE dbcut.items (id int PRIMARY KEY, body text NOT NULL);
         INSERT INTO dbcut.items SELECT g, 'row-' || g FROM generate_series(1, 5000) g;
         GRANT SELECT ON dbcut.items TO pgt_dbcut_s;",
    )
    .await
    .expect("the tenant's table");
    let p = Proc::spawn(
        "env-db-cut",
        &["serve", "--id", "env-db-cut"],
        &[
            ("RUNNER_DATABASE_URL", pg.url.as_str()),
            ("RUNNER_LISTEN", "127.0.0.1:0"),
            ("RUNNER_WORKERS_DOMAIN", "workers.test"),
            ("RUNNER_SECRETS_KEY", key_hex.as_str()),
            ("POSTGATE_TOKEN_PEPPER", PEPPER),
            ("POSTGATE_DATABASE_URL", pg.url.as_str()),
        ],
    );
    let addr = p.listen_addr(Duration::from_secs(10));
    let get = |query: &str| -> String {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        write!(
            s,
            "GET /?{query} HTTP/1.1\r\nHost: dbcut.workers.test\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    };
    let fifty_own_rows = |when: &str| {
        for i in 0..50 {
            let id = 3 + i * 17;
            let answer = get(&format!("id={id}"));
            let want = format!(r#"[{{"id":{id},"body":"row-{id}"}}]"#);
            assert!(
                answer.starts_with("HTTP/1.1 200") && answer.ends_with(&want),
                "{when}: request {i} asked for id {id}: {answer}"
            );
        }
    };
    fifty_own_rows("warm");
    // Cut off by its client: the connection is reset while the query sleeps.
    {
        use tokio::io::AsyncWriteExt as _;
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        s.write_all(
            b"GET /?id=4000&slow=1.5 HTTP/1.1\r\nHost: dbcut.workers.test\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("send");
        tokio::time::sleep(Duration::from_millis(400)).await;
        // RST rather than FIN: the client is gone. (A zero linger does not block the thread.)
        #[allow(deprecated)]
        let _ = s.set_linger(Some(Duration::ZERO));
    }
    fifty_own_rows("after a client cut off mid-query");
    // Cut off by its CPU limit right after a query (its answer was read in full first).
    let answer = get("id=4001&slow=0.3&spin=1");
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "the endless loop is stopped: {answer}"
    );
    fifty_own_rows("after the CPU limit stopped an invocation");
    std::thread::sleep(Duration::from_millis(1500));
    fifty_own_rows("after the abandoned query finished");
}
