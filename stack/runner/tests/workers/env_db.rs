//! `env.DB` through postgate's library in a real `runner serve` process: a database that is down,
//! and invocations cut off mid-query.

use std::time::{Duration, Instant};

use super::raw_get_with;
use crate::support::{Pg, Proc, connect};

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
