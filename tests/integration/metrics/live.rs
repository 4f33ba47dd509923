//! Issue 19, "must show" 1–3 on the real engine: the stack up with Prometheus and the exporters
//! built from our images (Debian trixie's packages); every scrape target `up == 1` through
//! Prometheus's HTTP API, each runner replica its own target; after N postgate queries and M
//! requests to a worker, PromQL gives back N and M, and a queue's depth equals `queue stats`;
//! and every metric name the dashboards and alert rules use is in Prometheus's series list.
//!
//! Grafana, Loki and Alloy cannot be pulled here, so `up` names the services it starts (the
//! observability group's Prometheus and exporters, with the core and apps services); their
//! provisioning is checked by `provisioning`. Unique project name and image tags; a guard takes
//! everything down.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use super::queries::{Query, dashboard_queries, metric_names, rule_queries};
use crate::engine::Proj;
use crate::support::{build_service_binaries, published_port};

const REPLICAS: usize = 2;
/// The `[images]` keys of the images this test builds under its own tags.
const IMAGES: [&str; 8] = [
    "postgres",
    "pgbouncer",
    "stackctl",
    "postgate",
    "runner",
    "prometheus",
    "postgres_exporter",
    "pgbouncer_exporter",
];
/// Requests the test sends through postgate (N) and to its worker (M, of which K enqueue a job
/// nobody consumes, and one a job the consumer worker runs).
const N: usize = 7;
const M: usize = 6;
const K: usize = 3;

const METER: &str = r#"export default {
  async fetch(req, env) {
    const path = new URL(req.url).pathname;
    if (path === '/park') { await env.QUEUE.send({ n: 1 }, { queue: 'parked' }); return new Response('parked'); }
    if (path === '/work') { await env.QUEUE.send({ n: 1 }, { queue: 'work' }); return new Response('queued'); }
    return new Response('hi');
  },
};"#;
const CONSUMER: &str =
    r#"export default { async queue(batch) { for (const m of batch.messages) m.ack(); } };"#;

/// Removes this test's image tags when it ends (after the project's guard took the stack down).
struct Tags(Vec<String>);

impl Drop for Tags {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", t]).output();
        }
    }
}

/// `curl` with `args`; (HTTP status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A Prometheus HTTP API answer's `data`, or None when it is not `success`.
fn api(port: u16, path: &str, query: Option<&str>) -> Option<serde_json::Value> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let (code, body) = match query {
        Some(q) => curl(&["-G", "--data-urlencode", &format!("query={q}"), &url]),
        None => curl(&[&url]),
    };
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    (code == 200 && v["status"] == "success").then(|| v["data"].clone())
}

/// The value of a PromQL query that returns one sample.
fn scalar(port: u16, q: &str) -> Option<f64> {
    let data = api(port, "/api/v1/query", Some(q))?;
    let r = data["result"].as_array()?;
    if r.len() != 1 {
        return None;
    }
    r[0]["value"][1].as_str()?.parse().ok()
}

/// Polls until `f` returns Some, or panics with `what` (and the last state) after `within`.
fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_scrapes_every_replica_and_exporter_and_every_dashboard_metric_exists() {
    let started = Instant::now();
    let p = Proj::new("met");
    let s = &p.s;
    build_service_binaries();
    std::fs::remove_file(s.file("stack.toml")).unwrap(); // init writes the full one
    s.cmd(["init", "--pooler", "pgbouncer", "--project", &p.name])
        .run()
        .success();
    let [_, _, gate_port, _, prom_port] =
        s.free_ports(["postgres", "pooler", "postgate", "grafana", "prometheus"]);
    s.edit(
        "stack.toml",
        "replicas = 3",
        &format!("replicas = {REPLICAS}"),
    );
    s.edit(
        "stack.toml",
        "scrape_interval = \"15s\"",
        "scrape_interval = \"1s\"",
    );
    // Our images under this test's own tags: the shared tags may be rebuilt meanwhile from
    // another checkout, and this test must run what this tree builds.
    let toml = s.read("stack.toml");
    let (head, images) = toml
        .split_once("\n[images]")
        .expect("stack.toml has [images]");
    let mut images = images.to_string();
    let mut tags = Vec::new();
    for key in IMAGES {
        let line = images
            .lines()
            .find(|l| l.starts_with(&format!("{key} = \"")))
            .unwrap_or_else(|| panic!("stack.toml has no image {key}"))
            .to_string();
        let image = line.split('"').nth(1).unwrap();
        let repo = image.rsplit_once(':').unwrap().0;
        let tag = format!("{repo}:metrics-test");
        images = images.replace(&line, &format!("{key} = \"{tag}\""));
        tags.push(tag);
    }
    s.write("stack.toml", &format!("{head}\n[images]{images}"));
    let _tags = Tags(tags);
    // `stackctl build` names an image as its key does, with `-` for `_`.
    let names: Vec<String> = IMAGES.iter().map(|k| k.replace('_', "-")).collect();
    s.cmd(["build"])
        .args(&names.iter().map(String::as_str).collect::<Vec<_>>())
        .run()
        .success();
    println!("images built after {:?}", started.elapsed());
    s.cmd([
        "up",
        "postgate",
        "runner",
        "prometheus",
        "postgres-exporter",
        "pgbouncer-exporter",
        "--wait-timeout",
        "180",
    ])
    .run()
    .success();
    println!("stack up after {:?}", started.elapsed());

    // Must show 1: every target up, each runner replica its own target.
    let expected: BTreeMap<&str, usize> = [
        ("prometheus", 1),
        ("postgate", 1),
        ("runner", REPLICAS),
        ("postgres", 1),
        ("pooler", 1),
    ]
    .into();
    eventually(Duration::from_secs(60), "every target up", || {
        let data = api(prom_port, "/api/v1/targets", None).ok_or("no answer")?;
        let targets = data["activeTargets"].as_array().ok_or("no targets")?;
        let mut up: BTreeMap<&str, usize> = BTreeMap::new();
        for t in targets {
            if t["health"] != "up" {
                return Err(format!(
                    "{} {}: {}",
                    t["labels"]["job"], t["scrapeUrl"], t["lastError"]
                ));
            }
            *up.entry(t["labels"]["job"].as_str().unwrap_or("?"))
                .or_default() += 1;
        }
        (up == expected).then_some(()).ok_or(format!("{up:?}"))
    });
    let data = api(prom_port, "/api/v1/query", Some("up")).expect("query up");
    let series = data["result"].as_array().unwrap();
    assert_eq!(series.len(), 1 + 1 + REPLICAS + 1 + 1, "{series:?}");
    for v in series {
        assert_eq!(v["value"][1], "1", "{v}");
    }
    let runner_instances: BTreeSet<&str> = series
        .iter()
        .filter(|v| v["metric"]["job"] == "runner")
        .map(|v| v["metric"]["instance"].as_str().unwrap())
        .collect();
    assert_eq!(runner_instances.len(), REPLICAS, "{runner_instances:?}");
    println!("every target up after {:?}", started.elapsed());

    // Must show 2: N queries through postgate, M requests to a worker (K park a job).
    s.cmd(["tenant", "create", "metered"]).run().success();
    let out = s
        .cmd([
            "token",
            "create",
            "--tenant",
            "metered",
            "--permissions",
            "SELECT",
        ])
        .run()
        .success();
    let token = out.stdout().trim().to_string();
    for _ in 0..N {
        let (code, body) = curl(&[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "content-type: application/json",
            "--data-binary",
            r#"{"sql":"select 1 as one"}"#,
            &format!("http://127.0.0.1:{gate_port}/query"),
        ]);
        assert_eq!(code, 200, "{body}");
    }
    s.write("meter.js", METER);
    s.write("consumer.js", CONSUMER);
    let (meter, consumer) = (s.file("meter.js"), s.file("consumer.js"));
    s.cmd(["worker", "deploy", "meter", meter.to_str().unwrap()])
        .run()
        .success();
    s.cmd([
        "worker",
        "deploy",
        "consumer",
        consumer.to_str().unwrap(),
        "--queue",
        "work",
    ])
    .run()
    .success();
    let runner_ports: Vec<u16> = (1..=REPLICAS)
        .map(|n| published_port(&format!("{}-runner-{n}", p.name), "8787/tcp"))
        .collect();
    let paths: Vec<&str> = std::iter::repeat_n("/park", K)
        .chain(["/work"])
        .chain(std::iter::repeat_n("/", M - K - 1))
        .collect();
    for (i, path) in paths.iter().enumerate() {
        let url = format!("http://127.0.0.1:{}{path}", runner_ports[i % REPLICAS]);
        // The first request to a replica may come before the deploy's NOTIFY reached it.
        eventually(Duration::from_secs(5), "the worker answers", || {
            let (code, body) = curl(&["-H", "Host: meter.workers.localhost", &url]);
            (code == 200).then_some(()).ok_or(format!("{code} {body}"))
        });
    }
    let counted = |q: &str, want: f64| {
        eventually(Duration::from_secs(20), q, || {
            let v = scalar(prom_port, q).ok_or("no single sample")?;
            (v == want).then_some(()).ok_or(format!("{v}"))
        })
    };
    counted(
        r#"sum(postgate_requests_total{endpoint="query",outcome="ok"})"#,
        N as f64,
    );
    counted(
        r#"sum(runner_http_requests_total{worker="meter"})"#,
        M as f64,
    );
    let stats = s.cmd(["queue", "stats", "--json"]).run().success().stdout();
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("queue stats --json");
    let list = stats
        .as_array()
        .or_else(|| stats["queues"].as_array())
        .unwrap_or_else(|| panic!("queue stats --json: {stats}"));
    let parked = list
        .iter()
        .find(|q| q["queue"] == "parked")
        .unwrap_or_else(|| panic!("no queue parked in {stats}"));
    assert_eq!(parked["ready"].as_u64(), Some(K as u64), "{parked}");
    counted(
        r#"max(runner_queue_depth{queue="parked",state="ready"})"#,
        K as f64,
    );
    counted(
        r#"sum(runner_jobs_total{queue="work",outcome="done"})"#,
        1.0,
    );
    println!("counters match after {:?}", started.elapsed());

    // Must show 3: every metric a dashboard panel or an alert rule reads is a series here.
    let mut queries: Vec<Query> = Vec::new();
    for f in [
        "stack-overview.json",
        "postgresql.json",
        "pooler.json",
        "postgate.json",
        "runner.json",
    ] {
        queries.extend(dashboard_queries(
            f,
            &s.read(&format!("observability/grafana/{f}")),
        ));
    }
    for f in ["alerts.yml", "pooler-alerts.yml"] {
        queries.extend(rule_queries(
            f,
            &s.read(&format!("observability/prometheus/{f}")),
        ));
    }
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for q in &queries {
        for name in metric_names(q).unwrap_or_else(|e| panic!("{e}")) {
            wanted.entry(name).or_default().push(q.from.clone());
        }
    }
    let data = api(prom_port, "/api/v1/label/__name__/values", None).expect("series names");
    let known: BTreeSet<&str> = data
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(name, _)| !known.contains(name.as_str()))
        .map(|(name, from)| format!("{name} (used by {})", from.join("; ")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics no target exposes:\n{}",
        missing.join("\n")
    );
    assert!(wanted.len() >= 25, "only {} metric names", wanted.len());
    println!(
        "{} queries over {} metric names, all present; done after {:?}",
        queries.len(),
        wanted.len(),
        started.elapsed()
    );
}
