//! The runner end to end on the real engine (issue 6, point 1): `stackctl init` → `build` →
//! `up runner` → `worker deploy` of a hello worker (var + sealed secret) and of a JSON API worker
//! that keeps notes in its own postgate tenant through `env.DB`; requests through each replica's
//! published loopback port, routed by `NAME.workers.DOMAIN` and by a path route; a redeploy
//! served by every replica within a second; `worker list|logs|rm` and `queue stats`.
//! Unique project name and image tags; everything it made is removed by a guard.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Stackctl, eventually, published_port, require_docker};

struct Stack {
    s: Stackctl,
    name: String,
    tags: Vec<String>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self
            .s
            .cmd(["down", "--volumes", "--include-backups", "--yes"])
            .run();
        for t in &self.tags {
            let _ = Command::new("docker").args(["rmi", "-f", t]).output();
        }
    }
}

/// One HTTP request with curl: (status, body).
pub(crate) fn http(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "-m", "10", "-X", method, "-H"])
        .arg(format!("Host: {host}"))
        .args(["-w", "\n%{http_code}"]);
    if let Some(b) = body {
        c.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    let out = c
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A workflow: a step, then a wait for a `paid` event.
const ORDERS: &str = r#"
export class Order extends WorkflowEntrypoint {
  async run(event, step) {
    const n = await step.do('reserve', async () => event.payload.n * 2);
    const ev = await step.waitForEvent('paid', { type: 'paid', timeout: '1 minute' });
    return { n, by: ev.payload.by };
  }
}
export default { async fetch() { return new Response('orders'); } };
"#;

const HELLO_V1: &str = r#"export default {
  fetch(req, env) {
    console.log('hello served', new URL(req.url).pathname);
    return new Response(`hello ${env.GREETING} v1 key=${env.API_KEY === 'k-123'} db=${typeof env.DB}`);
  },
};"#;
const HELLO_V2: &str =
    r#"export default { fetch(req, env) { return new Response(`hello ${env.GREETING} v2`); } };"#;
const API: &str = r#"export default {
  async fetch(req, env) {
    await env.DB.query('CREATE TABLE IF NOT EXISTS notes (id bigserial PRIMARY KEY, body text NOT NULL)');
    if (req.method === 'POST') {
      const { body } = await req.json();
      const r = await env.DB.query('INSERT INTO notes (body) VALUES ($1) RETURNING id, body', [body]);
      console.log('note created', r.rows[0].id);
      return Response.json(r.rows[0], { status: 201 });
    }
    try {
      await env.DB.query('SELECT * FROM runner.workers');
      return Response.json({ leak: true }, { status: 500 });
    } catch (e) {
      const r = await env.DB.query('SELECT body FROM notes ORDER BY id');
      return Response.json({ notes: r.rows.map((n) => n.body), count: r.rowCount, denied: e.code, otherSecret: typeof env.API_KEY });
    }
  },
};"#;

#[test]
fn runner_serves_workers_by_host_and_route_with_env_db_and_hot_redeploy() {
    require_docker();
    let started = Instant::now();
    let suffix = std::process::id() ^ (started.elapsed().as_nanos() as u32).rotate_left(7);
    let name = format!("twk{suffix:08x}");
    let tags = vec![
        format!("stackctl/stackctl:e2e-{name}"),
        format!("stackctl/runner:e2e-{name}"),
    ];
    let st = Stack {
        s: Stackctl::new(),
        name: name.clone(),
        tags: tags.clone(),
    };
    let s = &st.s;
    s.cmd(["init", "--pooler", "pgbouncer", "--project", &name])
        .run()
        .success();
    // Free ports, two replicas, and our own tags for the images built from this tree (the
    // shared tags may be rebuilt meanwhile from another checkout).
    s.free_ports(["postgres", "pooler", "postgate", "grafana"]);
    let toml = s
        .read("stack.toml")
        .replace("replicas = 3", "replicas = 2")
        .replace(
            "stackctl = \"stackctl/stackctl:0.1.0\"",
            &format!("stackctl = \"{}\"", tags[0]),
        )
        .replace(
            "runner = \"stackctl/runner:0.1.0\"",
            &format!("runner = \"{}\"", tags[1]),
        );
    assert!(
        toml.contains(&tags[1]),
        "stack.toml layout changed:\n{toml}"
    );
    s.write("stack.toml", &toml);

    s.cmd(["build", "stackctl", "runner"]).run().success();
    // `up runner`, then each replica's published port.
    let up_runner = || -> Vec<u16> {
        s.cmd(["up", "runner", "--wait-timeout", "150"])
            .run()
            .success();
        (1..=2)
            .map(|n| published_port(&format!("{}-runner-{n}", st.name), "8787/tcp"))
            .collect()
    };
    let ports = up_runner();
    println!("stack up after {:?}", started.elapsed());

    s.write("hello.js", HELLO_V1);
    s.write("api.js", API);
    let (hello_js, api_js) = (s.file("hello.js"), s.file("api.js"));
    let (hello_js, api_js) = (hello_js.to_str().unwrap(), api_js.to_str().unwrap());
    s.cmd([
        "worker",
        "deploy",
        "hello",
        hello_js,
        "--var",
        "GREETING=hi",
        "--secret",
        "API_KEY",
    ])
    .env("API_KEY", "k-123")
    .run()
    .success()
    .stdout_contains("deployed worker hello version 1 (secrets: API_KEY)");
    s.cmd([
        "worker",
        "deploy",
        "api",
        api_js,
        "--route",
        "/api",
        "--db-tenant",
        "notes_app",
        "--db-permissions",
        "SELECT,INSERT,UPDATE,DELETE,DDL",
    ])
    .run()
    .success()
    .stdout_contains("env.DB on tenant notes_app with a new token");

    // Host routing on every replica (the first answer may wait for the NOTIFY to land).
    for &p in &ports {
        let body = eventually(Duration::from_secs(5), "hello by host", || {
            let (code, body) = http(p, "GET", "hello.workers.localhost", "/", None);
            (code == 200).then_some(body)
        });
        assert_eq!(body, "hello hi v1 key=true db=undefined");
    }
    // An unknown worker host and an unrouted path: JSON 404.
    let (code, body) = http(ports[0], "GET", "nobody.workers.localhost", "/", None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");

    // The JSON API through its path route, any host; its table lives in its tenant.
    eventually(Duration::from_secs(5), "api by route", || {
        (http(ports[1], "GET", "example.test", "/api/notes", None).0 == 200).then_some(())
    });
    let (code, body) = http(
        ports[0],
        "POST",
        "example.test",
        "/api/notes",
        Some(r#"{"body":"first"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["body"], "first");
    let (code, body) = http(
        ports[1],
        "POST",
        "api.workers.localhost",
        "/",
        Some(r#"{"body":"second"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = http(ports[1], "GET", "example.test", "/api/notes", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"notes": ["first", "second"], "count": 2, "denied": "denied",
            "otherSecret": "undefined"}),
        "the worker's token reaches its tenant only; hello's secret is not on api's env"
    );

    // Redeploy: every replica serves v2 within a second of the deploy command's return.
    s.write("hello.js", HELLO_V2);
    let deploy_v2 = [
        "worker",
        "deploy",
        "hello",
        hello_js,
        "--var",
        "GREETING=hi",
        "--max-body-bytes",
        "16",
    ];
    s.cmd(deploy_v2)
        .run()
        .success()
        .stdout_contains("version 2 (secrets: API_KEY)");
    let t = Instant::now();
    for &p in &ports {
        eventually(Duration::from_secs(1), "v2 on every replica", || {
            let (code, body) = http(p, "GET", "hello.workers.localhost", "/", None);
            (code == 200 && body == "hello hi v2").then_some(())
        });
    }
    println!("redeploy served by both replicas after {:?}", t.elapsed());
    // The same deploy again changes nothing (no version 3, no reload).
    s.cmd(deploy_v2)
        .run()
        .success()
        .stdout_contains("worker hello is unchanged (version 2)");

    // Per-worker limits set at deploy: hello's 16-byte body limit; a spinning worker with a
    // 20 ms CPU limit is stopped with its error while hello keeps answering.
    let (code, body) = http(
        ports[0],
        "POST",
        "hello.workers.localhost",
        "/",
        Some(&"x".repeat(64)),
    );
    assert_eq!(code, 413, "{body}");
    s.write("spin.js", "export default { fetch() { for (;;) {} } };");
    let spin_js = s.file("spin.js");
    s.cmd([
        "worker",
        "deploy",
        "spin",
        spin_js.to_str().unwrap(),
        "--cpu-ms",
        "20",
    ])
    .run()
    .success();
    let (code, body) = eventually(Duration::from_secs(5), "spin deployed", || {
        let r = http(ports[0], "GET", "spin.workers.localhost", "/", None);
        (r.0 != 404).then_some(r)
    });
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("CPU time"), "{body}");
    assert_eq!(
        http(ports[0], "GET", "hello.workers.localhost", "/", None),
        (200, "hello hi v2".to_string())
    );

    let list = s.cmd(["worker", "list"]).run().success().stdout();
    assert!(
        list.lines()
            .any(|l| l.starts_with("api ") && l.contains("/api") && l.contains("notes_app")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("hello ") && l.contains("API_KEY")),
        "{list}"
    );
    let logs = s.cmd(["worker", "logs", "api"]).run().success().stdout();
    assert!(logs.contains("note created"), "{logs}");
    assert!(
        logs.lines().all(|l| l.contains("\"worker\":\"api\"")),
        "only api's lines: {logs}"
    );
    assert!(!logs.contains("k-123") && !list.contains("k-123"));
    s.cmd(["queue", "stats"])
        .run()
        .success()
        .stdout_contains("QUEUE");

    // Bad input: a clear error and nothing deployed.
    s.cmd(["worker", "deploy", "Bad_Name", hello_js])
        .run()
        .failure()
        .stderr_contains("invalid worker name");

    // Rotating RUNNER_SECRETS_KEY: the replicas, restarted with the new key and the old one as
    // RUNNER_SECRETS_KEY_PREVIOUS, seal the stored secrets again (hello's API_KEY and api's
    // token); then the old key can go, and both still open.
    s.cmd(["init", "--rotate", "RUNNER_SECRETS_KEY"])
        .run()
        .success()
        .stdout_contains("RUNNER_SECRETS_KEY_PREVIOUS");
    up_runner();
    let logs = s.cmd(["logs", "runner"]).run().success().stdout();
    let resealed: u64 = logs
        .lines()
        .filter(|l| l.contains("sealed again under the current RUNNER_SECRETS_KEY"))
        .filter_map(|l| {
            let json = &l[l.find('{')?..];
            serde_json::from_str::<serde_json::Value>(json).ok()?["resealed"].as_u64()
        })
        .sum();
    assert_eq!(resealed, 2, "hello's secret and api's token: {logs}");
    let env_path = s.file(".env");
    let env: String = s
        .read(".env")
        .lines()
        .filter(|l| !l.starts_with("RUNNER_SECRETS_KEY_PREVIOUS="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&env_path, env).expect("dropping the previous key from .env");
    let ports = up_runner();
    s.write("hello.js", HELLO_V1);
    s.cmd(deploy_v2)
        .run()
        .success()
        .stdout_contains("version 3 (secrets: API_KEY)");
    for &p in &ports {
        let body = eventually(
            Duration::from_secs(5),
            "hello v3 after the rotation",
            || {
                let (code, body) = http(p, "GET", "hello.workers.localhost", "/", None);
                (code == 200 && body.contains("v1")).then_some(body)
            },
        );
        assert_eq!(
            body, "hello hi v1 key=true db=undefined",
            "the secret opens"
        );
        let (code, body) = http(p, "GET", "example.test", "/api/notes", None);
        assert_eq!(code, 200, "api's token opens: {body}");
        assert!(body.contains("\"count\":2"), "{body}");
    }

    // Durable workflows through stackctl on the real engine (issue 18): a worker with a
    // workflow binding, then `stackctl workflow start|status|send-event|list` in the runner.
    s.write("orders.js", ORDERS);
    let orders_js = s.file("orders.js");
    s.cmd([
        "worker",
        "deploy",
        "orders",
        orders_js.to_str().unwrap(),
        "--workflow",
        "ORDER=Order",
    ])
    .run()
    .success();
    let started_id = s
        .cmd([
            "workflow",
            "start",
            "Order",
            "--id",
            "o-1",
            "--params",
            r#"{"n": 21}"#,
        ])
        .run()
        .success()
        .stdout();
    assert_eq!(started_id, "o-1\n");
    let status = eventually(Duration::from_secs(30), "o-1 waiting for its event", || {
        let out = s
            .cmd(["workflow", "status", "o-1"])
            .run()
            .success()
            .stdout();
        out.contains("status    waiting").then_some(out)
    });
    assert!(status.contains("reserve#1"), "{status}");
    s.cmd([
        "workflow",
        "send-event",
        "o-1",
        "paid",
        "--payload",
        r#"{"by": "ann"}"#,
    ])
    .run()
    .success()
    .stdout_contains("sent to workflow instance o-1");
    let done = eventually(Duration::from_secs(30), "o-1 complete", || {
        let out = s
            .cmd(["workflow", "status", "o-1", "--json"])
            .run()
            .success()
            .stdout();
        let v: serde_json::Value = serde_json::from_str(&out).expect("status --json");
        (v["status"] == "complete").then_some(v)
    });
    assert_eq!(done["output"], serde_json::json!({"n": 42, "by": "ann"}));
    s.cmd(["workflow", "list", "--status", "complete"])
        .run()
        .success()
        .stdout_contains("o-1");
    s.cmd(["workflow", "pause", "o-1"])
        .run()
        .failure()
        .stderr_contains("o-1 is complete: it cannot pause");
    s.cmd(["workflow", "status", "nope"])
        .run()
        .failure()
        .stderr_contains("unknown workflow instance nope");
    s.cmd(["workflow", "start", "Order", "--params", "{n:"])
        .run()
        .failure()
        .stderr_contains("--params is not JSON");

    s.cmd(["worker", "rm", "hello"]).run().success();
    eventually(Duration::from_secs(2), "hello gone", || {
        (http(ports[0], "GET", "hello.workers.localhost", "/", None).0 == 404).then_some(())
    });
    s.cmd(["worker", "rm", "hello"])
        .run()
        .failure()
        .stderr_contains("no worker named hello");
    println!("workers e2e took {:?}", started.elapsed());
}
