//! Clients that give up mid-request (issue 21). hyper drops a request's handler future when its
//! client goes away; a pooled session dropped mid-exchange must never serve the next request,
//! or that request reads the abandoned one's answers (another request's rows, with HTTP 200).
//! Every check runs against the real `postgate serve` binary behind the real PgBouncer, with
//! clients that reset their TCP connection while the statement runs.

use crate::support::{Harness, Process, raw_http, spawn_serve};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

const ROWS: i64 = 10_000;
const READ: &str = "select id, body from items where id = $1";

/// A tenant `cut` with `items(id, body)` holding `ROWS` rows (`body` = `row-<id>`), a
/// read-only token, and a `postgate serve` process.
async fn setup() -> (Harness, Process, String) {
    let h = Harness::new(true).await;
    h.tenant("cut").await;
    let ddl = h.token("cut", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    h.ok(
        &ddl,
        "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL)",
    )
    .await;
    h.ok(
        &ddl,
        &format!("INSERT INTO items SELECT g, 'row-' || g FROM generate_series(1, {ROWS}) g"),
    )
    .await;
    let ro = h.token("cut", "SELECT").await;
    let p = spawn_serve(&h).await;
    (h, p, ro)
}

fn request(token: &str, sql: &str, params: Value) -> String {
    let body = json!({ "sql": sql, "params": params }).to_string();
    format!(
        "POST /query HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `req` and resets the connection after `after`, as a client that times out does.
async fn cut_off(addr: &str, req: &str, after: Duration) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("send");
    tokio::time::sleep(after).await;
    // RST rather than FIN: the client is gone, not half-closed. (A zero linger does not block
    // the thread, which is what tokio's deprecation warns of.)
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

/// The status line and JSON body of an HTTP/1.0 answer.
fn parse(answer: &str) -> (String, Value) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The row `id` must answer with: exactly itself.
fn own_row(id: i64, extra: &[Value]) -> Value {
    let mut row = vec![json!(id), json!(format!("row-{id}"))];
    row.extend_from_slice(extra);
    json!([row])
}

/// 50 sequential reads for different ids through `sql`: each must get exactly its own row.
async fn fifty_own_rows(p: &Process, token: &str, sql: &str, extra: &[Value]) {
    for i in 0..50 {
        let id = 7 + i * 13;
        let answer = raw_http(&p.addr, &request(token, sql, json!([id]))).await;
        let (status, v) = parse(&answer);
        assert!(status.contains(" 200 "), "request {i} (id {id}): {answer}");
        assert_eq!(
            v["rows"],
            own_row(id, extra),
            "request {i} asked for id {id} and got another answer: {v}"
        );
    }
}

/// A read cut off by its client while its statement runs; then 50 sequential reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cut_off_mid_statement_leaves_no_answer_behind() {
    let (_h, p, ro) = setup().await;
    // Warm: the statement is prepared on the session before the cut.
    fifty_own_rows(&p, &ro, READ, &[]).await;
    let slow = "select id, body from items where id = $1 and pg_sleep(2) is not null";
    let first = raw_http(&p.addr, &request(&ro, slow, json!([1]))).await;
    assert_eq!(parse(&first).1["rows"], own_row(1, &[]), "{first}");
    cut_off(
        &p.addr,
        &request(&ro, slow, json!([5000])),
        Duration::from_millis(500),
    )
    .await;
    fifty_own_rows(&p, &ro, READ, &[]).await;
    // And after the abandoned statement has finished on the server.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    fifty_own_rows(&p, &ro, READ, &[]).await;
}

/// A read cut off while its statement was being prepared for the first time (its Parse waits
/// on a lock); then 50 sequential reads of that same statement and of another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cut_off_while_preparing_caches_no_statement() {
    let (h, p, ro) = setup().await;
    fifty_own_rows(&p, &ro, READ, &[]).await;
    let fresh = "select id, body, 'fresh' as tag from items where id = $1";
    let su = h.pg.superuser().await;
    su.batch_execute("BEGIN; LOCK TABLE cut.items IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    cut_off(
        &p.addr,
        &request(&ro, fresh, json!([42])),
        Duration::from_millis(500),
    )
    .await;
    su.batch_execute("COMMIT").await.expect("unlock");
    fifty_own_rows(&p, &ro, fresh, &[json!("fresh")]).await;
    fifty_own_rows(&p, &ro, READ, &[]).await;
}

/// Concurrent clients of one tenant, a share of them resetting their connection at random
/// moments (statements that sleep a few milliseconds, some prepared for the first time):
/// every answer that arrives is checked against the id it asked for. Bounded in count and time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_that_disconnect_get_no_wrong_answer() {
    let (_h, p, ro) = setup().await;
    const CLIENTS: usize = 12;
    const PER_CLIENT: usize = 120;
    let addr = Arc::new(p.addr.clone());
    let ro = Arc::new(ro);
    let (answered, cut, wrong) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (addr, ro) = (addr.clone(), ro.clone());
        let (answered, cut, wrong) = (answered.clone(), cut.clone(), wrong.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(rand::random());
            for _ in 0..PER_CLIENT {
                if Instant::now() > deadline {
                    break;
                }
                let id: i64 = rng.random_range(1..=ROWS);
                // One of 40 texts, so that first-time prepares keep happening on new sessions.
                let variant: u32 = rng.random_range(0..40);
                let sleep_ms: u32 = rng.random_range(0..20);
                let sql = format!(
                    "select id, body, {variant} as v from items where id = $1 and pg_sleep({}) is not null",
                    f64::from(sleep_ms) / 1000.0
                );
                let req = request(&ro, &sql, json!([id]));
                if rng.random_bool(0.3) {
                    let after = Duration::from_millis(rng.random_range(0..25));
                    cut_off(&addr, &req, after).await;
                    cut.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let answer = raw_http(&addr, &req).await;
                let (status, v) = parse(&answer);
                answered.fetch_add(1, Ordering::Relaxed);
                if !status.contains(" 200 ") || v["rows"] != own_row(id, &[json!(variant)]) {
                    wrong.fetch_add(1, Ordering::Relaxed);
                    eprintln!("id {id} variant {variant}: {answer}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let (answered, cut, wrong) = (
        answered.load(Ordering::Relaxed),
        cut.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed),
    );
    println!(
        "disconnect stress: {CLIENTS} clients, {} requests: {answered} answered and checked, {cut} cut off by their client, {wrong} wrong",
        answered + cut
    );
    assert!(answered >= 500, "too few answers to judge: {answered}");
    assert!(cut >= 100, "too few disconnects to judge: {cut}");
    assert_eq!(wrong, 0, "wrong or failed answers");
    // And the sessions left behind serve sequential reads correctly.
    fifty_own_rows(&p, &ro, READ, &[]).await;
}
