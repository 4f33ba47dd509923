//! Durable workflows on real `runner serve` processes and a real PostgreSQL: steps, a sleep and
//! a waitForEvent run to completion; an early event is kept; a SIGKILLed replica's instances
//! finish on another without re-running completed steps (side effects counted in the database);
//! retries and `NonRetryableError`; idempotent creates; a replay mismatch fails clearly; the
//! worker's `env.BINDING`.

use std::time::{Duration, Instant};

use crate::support::{Pg, Proc, connect, wait_for};
use crate::workers::raw_get;

/// Each step body records a side effect: a job in the queue `effects` (no consumer), payload
/// `{"i": instance, "s": step}`.
const FLOW: &str = r#"
import { WorkflowEntrypoint } from 'cloudflare:workers';
export class Flow extends WorkflowEntrypoint {
  async run(event, step) {
    const effect = (s) => this.env.QUEUE.send({ i: event.instanceId, s }, { queue: 'effects' });
    const a = await step.do('a', async () => { await effect('a'); return event.payload.n + 1; });
    await step.sleep('nap', '1 second');
    const ev = await step.waitForEvent('approval', { type: 'approved', timeout: '1 minute' });
    const b = await step.do('b', async () => { await effect('b'); return a * ev.payload.k; });
    let total = 0;
    for (const x of [1, 2, 3]) total += await step.do('add', async () => { await effect('add'); return x; });
    return { a, b, total };
  }
}
export default { async fetch(req, env) {
  const i = await env.FLOW.create({ id: 'from-binding', params: { n: 1 } });
  const again = await env.FLOW.create({ id: 'from-binding', params: { n: 99 } });
  await i.sendEvent({ type: 'approved', payload: { k: 5 } });
  const s = await (await env.FLOW.get(again.id)).status();
  return new Response(JSON.stringify({ id: i.id, same: again.id === i.id, status: s.status,
    maker: typeof globalThis.__makeWorkflow }));
} };
"#;

async fn one(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

/// PostgreSQL with worker `name` deployed from `source` with its `workflows` bindings (JSON).
async fn start(name: &str, source: &str, workflows: &str) -> (Pg, tokio_postgres::Client) {
    let pg = Pg::start().await;
    let mut c = connect(&pg.url).await;
    deploy(&mut c, name, source, workflows).await;
    (pg, c)
}

async fn deploy(c: &mut tokio_postgres::Client, name: &str, source: &str, workflows: &str) {
    let tx = c.transaction().await.expect("begin");
    tx.execute("SELECT runner.deploy($1, $2)", &[&name, &source])
        .await
        .expect("deploy");
    let wf: serde_json::Value = serde_json::from_str(workflows).expect("workflows json");
    tx.execute("SELECT runner.deploy_workflows($1, $2)", &[&name, &wf])
        .await
        .expect("deploy_workflows");
    tx.commit().await.expect("commit");
}

fn serve(id: &str, pg: &Pg) -> Proc {
    serve_with(id, pg, &[])
}

/// `runner serve` with a 2 s lease, 0.2 s polls, and `extra` environment.
fn serve_with(id: &str, pg: &Pg, extra: &[(&str, &str)]) -> Proc {
    let mut env = vec![
        ("RUNNER_DATABASE_URL", pg.url.as_str()),
        ("RUNNER_LISTEN", "127.0.0.1:0"),
        ("RUNNER_WORKERS_DOMAIN", "workers.test"),
        ("RUNNER_LEASE_SECS", "2"),
        ("RUNNER_POLL_SECS", "0.2"),
    ];
    env.extend_from_slice(extra);
    Proc::spawn(id, &["serve", "--id", id], &env)
}

async fn status(c: &tokio_postgres::Client, id: &str) -> String {
    c.query_opt(
        "SELECT status FROM runner.workflow_instances WHERE id = $1",
        &[&id],
    )
    .await
    .expect("status")
    .map(|r| r.get(0))
    .unwrap_or_default()
}

async fn wait_status(c: &tokio_postgres::Client, id: &str, want: &str, within: Duration) {
    wait_for(&format!("instance {id} to be {want}"), within, || async {
        let s = status(c, id).await;
        if s != want && matches!(s.as_str(), "complete" | "errored" | "terminated") {
            panic!(
                "instance {id} ended {s}, not {want}: {:?}",
                outcome(c, id).await
            );
        }
        (s == want).then_some(())
    })
    .await;
}

/// The instance's output and error.
async fn outcome(c: &tokio_postgres::Client, id: &str) -> (serde_json::Value, Option<String>) {
    let r = c
        .query_one(
            "SELECT coalesce(output, 'null'), error FROM runner.workflow_instances WHERE id = $1",
            &[&id],
        )
        .await
        .expect("outcome");
    (r.get(0), r.get(1))
}

async fn effects(c: &tokio_postgres::Client, id: &str, step: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM runner.jobs WHERE queue = 'effects'
            AND payload->>'i' = $1 AND payload->>'s' = $2",
        &[&id, &step],
    )
    .await
    .expect("effects")
    .get(0)
}

/// Started from SQL (a rolled-back transaction starts nothing), the instance runs a step,
/// sleeps, waits for an event sent when it waits, runs the rest and completes; a second
/// instance gets its event before it reaches the wait and does not lose it. Every step body ran
/// once; the history holds each state change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_with_steps_sleep_and_event_runs_to_completion() {
    let (pg, mut c) = start("flows", FLOW, r#"{"FLOW": "Flow"}"#).await;
    let _r = serve("wf-main", &pg);

    let tx = c.transaction().await.expect("begin");
    tx.execute(
        "SELECT runner.workflow_create('Flow', 'rolled-back', '{\"n\": 1}')",
        &[],
    )
    .await
    .expect("create in a transaction");
    tx.rollback().await.expect("rollback");
    let started = Instant::now();
    c.batch_execute(
        "BEGIN;
         SELECT runner.workflow_create('Flow', 'late', '{\"n\": 1}');
         SELECT runner.workflow_create('Flow', 'early', '{\"n\": 2}');
         SELECT runner.workflow_send_event('early', 'approved', '{\"k\": 10}');
         COMMIT;",
    )
    .await
    .expect("create and send");
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM runner.workflow_instances WHERE id = 'rolled-back'"
        )
        .await,
        0
    );

    // `late` waits for its event (after the sleep); `early` had it before and completes.
    wait_for(
        "late to wait for its event",
        Duration::from_secs(20),
        || async {
            let waiting = one(
                &c,
                "SELECT count(*) FROM runner.workflow_steps
              WHERE instance_id = 'late' AND name = 'approval' AND status = 'waiting'",
            )
            .await;
            (waiting == 1 && status(&c, "late").await == "waiting").then_some(())
        },
    )
    .await;
    wait_status(&c, "early", "complete", Duration::from_secs(20)).await;
    c.execute(
        "SELECT runner.workflow_send_event('late', 'approved', '{\"k\": 5}')",
        &[],
    )
    .await
    .expect("send event");
    wait_status(&c, "late", "complete", Duration::from_secs(20)).await;
    let took = started.elapsed();

    let out = |id: &'static str| {
        let c = &c;
        async move { outcome(c, id).await.0 }
    };
    assert_eq!(
        out("late").await,
        serde_json::json!({"a": 2, "b": 10, "total": 6})
    );
    assert_eq!(
        out("early").await,
        serde_json::json!({"a": 3, "b": 30, "total": 6})
    );
    for id in ["late", "early"] {
        assert_eq!(effects(&c, id, "a").await, 1, "{id}: step a ran once");
        assert_eq!(effects(&c, id, "b").await, 1, "{id}: step b ran once");
        assert_eq!(
            effects(&c, id, "add").await,
            3,
            "{id}: add ran once per occurrence"
        );
    }
    let steps: Vec<(String, i32, String)> = c
        .query(
            "SELECT name, occurrence, status FROM runner.workflow_steps
              WHERE instance_id = 'late' ORDER BY seq",
            &[],
        )
        .await
        .expect("steps")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let names: Vec<String> = steps.iter().map(|s| format!("{}#{}", s.0, s.1)).collect();
    assert_eq!(
        names,
        [
            "a#1",
            "nap#1",
            "approval#1",
            "b#1",
            "add#1",
            "add#2",
            "add#3"
        ]
    );
    assert!(steps.iter().all(|s| s.2 == "complete"), "{steps:?}");
    // History: queued, running, waiting (sleep), running, waiting (event), running, complete.
    let history: Vec<String> = c
        .query(
            "SELECT status FROM runner.workflow_history
              WHERE instance_id = 'late' AND step_name IS NULL ORDER BY id",
            &[],
        )
        .await
        .expect("history")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(history.first().map(String::as_str), Some("queued"));
    assert_eq!(history.last().map(String::as_str), Some("complete"));
    assert!(
        history.iter().filter(|s| *s == "waiting").count() >= 2,
        "{history:?}"
    );
    // An event for a finished instance is refused.
    let err = c
        .execute(
            "SELECT runner.workflow_send_event('late', 'approved', 'null')",
            &[],
        )
        .await
        .expect_err("finished instance takes no event");
    assert!(err.to_string().contains("complete") || format!("{err:?}").contains("complete"));
    println!(
        "workflow: two instances with 7 steps, a 1 s sleep and an event each, done in {took:.2?}"
    );
}

/// A caller-chosen id is an idempotency key; bad input gets a clear error. No runner needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_create_is_idempotent_and_checks_its_input() {
    let (_pg, c) = start("flows", FLOW, r#"{"FLOW": "Flow"}"#).await;
    for _ in 0..3 {
        let id: String = c
            .query_one(
                "SELECT runner.workflow_create('Flow', 'order-1', '{\"n\": 1}')",
                &[],
            )
            .await
            .expect("create")
            .get(0);
        assert_eq!(id, "order-1");
    }
    assert_eq!(
        one(&c, "SELECT count(*) FROM runner.workflow_instances").await,
        1
    );
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM runner.jobs WHERE queue = 'workflows'"
        )
        .await,
        1,
        "one job drives the instance"
    );
    let generated: String = c
        .query_one("SELECT runner.workflow_create('Flow')", &[])
        .await
        .expect("create with a generated id")
        .get(0);
    assert_eq!(generated.len(), 32);
    for (sql, says) in [
        (
            "SELECT runner.workflow_create('Nope', 'x')",
            "unknown workflow Nope",
        ),
        (
            "SELECT runner.workflow_create('Flow', 'bad id!')",
            "^[a-zA-Z0-9_][a-zA-Z0-9-_]*$",
        ),
        (
            "SELECT runner.workflow_send_event('missing', 'approved')",
            "unknown workflow instance missing",
        ),
    ] {
        let e = c.execute(sql, &[]).await.expect_err(sql);
        let db = e.as_db_error().expect("a database error");
        let text = format!("{} {}", db.message(), db.hint().unwrap_or(""));
        assert!(text.contains(says), "{sql}: {text}");
    }
    // A duplicate step or a second taker of one event is impossible.
    c.batch_execute(
        "UPDATE runner.workflow_instances SET status = 'running' WHERE id = 'order-1';
         INSERT INTO runner.workflow_steps (instance_id, name, occurrence, seq, kind, status)
         VALUES ('order-1', 'a', 1, 1, 'do', 'running');",
    )
    .await
    .expect("a step");
    let dup = c
        .execute(
            "INSERT INTO runner.workflow_steps (instance_id, name, occurrence, seq, kind, status)
             VALUES ('order-1', 'a', 1, 2, 'do', 'running')",
            &[],
        )
        .await
        .expect_err("a duplicate step");
    assert_eq!(
        dup.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
}

/// SIGKILL of the replica running two instances, one in the middle of a step and one asleep:
/// both complete on the other replica; completed steps did not run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_resumes_on_another_replica_after_sigkill() {
    let src = r#"
export class Crashy extends WorkflowEntrypoint {
  async run(event, step) {
    const effect = (s) => this.env.QUEUE.send({ i: event.instanceId, s }, { queue: 'effects' });
    await step.do('one', async () => { await effect('one'); return 1; });
    if (event.payload.sleep) await step.sleep('doze', '3 seconds');
    await step.do('slow', async () => {
      await effect('slow');
      await new Promise((r) => setTimeout(r, event.payload.slow_ms));
      return 2;
    });
    await step.do('three', async () => { await effect('three'); return 3; });
    return 'done';
  }
}"#;
    let (pg, c) = start("crashy", src, r#"{"CRASHY": "Crashy"}"#).await;
    let mut victim = serve("wf-victim", &pg);
    // One after the other: runs of one worker take turns on its engine thread.
    c.execute(
        "SELECT runner.workflow_create('Crashy', 'asleep', '{\"sleep\": true, \"slow_ms\": 10}')",
        &[],
    )
    .await
    .expect("create asleep");
    wait_status(&c, "asleep", "waiting", Duration::from_secs(20)).await;
    c.execute(
        "SELECT runner.workflow_create('Crashy', 'mid-step', '{\"slow_ms\": 4000}')",
        &[],
    )
    .await
    .expect("create mid-step");
    wait_for(
        "the victim to be mid-step and asleep",
        Duration::from_secs(20),
        || async {
            let mid = one(
                &c,
                "SELECT count(*) FROM runner.workflow_steps
                  WHERE instance_id = 'mid-step' AND name = 'slow' AND status = 'running'",
            )
            .await;
            let asleep = one(
                &c,
                "SELECT count(*) FROM runner.workflow_steps
                  WHERE instance_id = 'asleep' AND name = 'doze' AND status = 'waiting'",
            )
            .await;
            (mid == 1 && asleep == 1).then_some(())
        },
    )
    .await;
    victim.child.kill().expect("SIGKILL");
    victim.child.wait().expect("reaping the victim");
    let killed = Instant::now();
    let _survivor = serve("wf-survivor", &pg);
    wait_status(&c, "mid-step", "complete", Duration::from_secs(30)).await;
    wait_status(&c, "asleep", "complete", Duration::from_secs(30)).await;
    let took = killed.elapsed();
    for id in ["mid-step", "asleep"] {
        assert_eq!(
            effects(&c, id, "one").await,
            1,
            "{id}: completed step ran once"
        );
        assert_eq!(
            effects(&c, id, "three").await,
            1,
            "{id}: step three ran once"
        );
    }
    assert_eq!(
        effects(&c, "asleep", "slow").await,
        1,
        "the sleeper's steps ran once"
    );
    let twice = effects(&c, "mid-step", "slow").await;
    assert_eq!(twice, 2, "the step in flight at the kill ran again");
    let attempt = one(
        &c,
        "SELECT attempt::bigint FROM runner.workflow_steps WHERE instance_id = 'mid-step' AND name = 'slow'",
    )
    .await;
    assert_eq!(attempt, 2);
    println!(
        "workflow-kill: both instances complete on the survivor {took:.2?} after the SIGKILL; \
         in-flight steps that ran twice: 1 of 1; completed steps re-run: 0"
    );
}

/// A failing step retries with its backoff until it succeeds; `NonRetryableError` is not
/// retried and, uncaught, fails the instance; a step over its timeout fails (caught here); a step
/// result over 1 MiB fails clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_retries_with_backoff_and_nonretryable_error_fails_the_instance() {
    let src = r#"
import { NonRetryableError } from 'cloudflare:workflows';
export class Retry extends WorkflowEntrypoint {
  async run(event, step) {
    const effect = (s) => this.env.QUEUE.send({ i: event.instanceId, s }, { queue: 'effects' });
    if (event.payload.mode === 'flaky') {
      return await step.do('flaky', { retries: { limit: 3, delay: 100, backoff: 'linear' } }, async ({ attempt }) => {
        await effect('flaky');
        if (attempt < 3) throw new Error(`attempt ${attempt} failed`);
        return attempt;
      });
    }
    if (event.payload.mode === 'fatal') {
      await step.do('fatal', async () => { await effect('fatal'); throw new NonRetryableError('card declined'); });
    }
    if (event.payload.mode === 'slow') {
      try {
        await step.do('slow', { timeout: '200 millisecond', retries: { limit: 0, delay: 0 } }, async () => {
          await effect('slow');
          await new Promise((r) => setTimeout(r, 3000));
          return 'late';
        });
      } catch (e) { return 'caught: ' + e.message; }
    }
    if (event.payload.mode === 'exhaust') {
      try {
        await step.do('never', { retries: { limit: 1, delay: '100 millisecond', backoff: 'constant' } }, async () => { await effect('never'); throw new Error('nope'); });
      } catch (e) { return 'caught: ' + e.message; }
    }
    return await step.do('bad', async () => ({ f() {}, big: 'x'.repeat(2 << 20) }));
  }
}"#;
    let (pg, c) = start("retry", src, r#"{"RETRY": "Retry"}"#).await;
    let r = serve("wf-retry", &pg);
    c.batch_execute(
        "SELECT runner.workflow_create('Retry', 'flaky', '{\"mode\": \"flaky\"}');
         SELECT runner.workflow_create('Retry', 'fatal', '{\"mode\": \"fatal\"}');
         SELECT runner.workflow_create('Retry', 'exhaust', '{\"mode\": \"exhaust\"}');
         SELECT runner.workflow_create('Retry', 'toobig', '{\"mode\": \"big\"}');
         SELECT runner.workflow_create('Retry', 'slow', '{\"mode\": \"slow\"}');",
    )
    .await
    .expect("create");
    wait_status(&c, "flaky", "complete", Duration::from_secs(20)).await;
    wait_status(&c, "exhaust", "complete", Duration::from_secs(20)).await;
    wait_status(&c, "fatal", "errored", Duration::from_secs(20)).await;
    wait_status(&c, "toobig", "errored", Duration::from_secs(20)).await;
    wait_status(&c, "slow", "complete", Duration::from_secs(20)).await;
    assert_eq!(
        outcome(&c, "slow").await.0,
        serde_json::json!("caught: step \"slow\" timed out after 200 ms")
    );
    assert_eq!(effects(&c, "slow", "slow").await, 1);
    assert_eq!(effects(&c, "flaky", "flaky").await, 3);
    assert_eq!(
        effects(&c, "fatal", "fatal").await,
        1,
        "NonRetryableError is not retried"
    );
    assert_eq!(
        effects(&c, "exhaust", "never").await,
        2,
        "limit 1: two attempts"
    );
    assert_eq!(outcome(&c, "flaky").await.0, serde_json::json!(3));
    assert_eq!(
        outcome(&c, "exhaust").await.0,
        serde_json::json!("caught: nope")
    );
    let fatal = outcome(&c, "fatal").await.1.unwrap_or_default();
    assert!(fatal.contains("card declined"), "{fatal}");
    let big = outcome(&c, "toobig").await.1.unwrap_or_default();
    assert!(big.contains("byte limit"), "{big}");
    // One JSON log line per ended attempt, naming workflow, instance, step and attempt.
    let log = std::fs::read_to_string(&r.log).expect("runner log");
    let ends: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["instance"] == "flaky" && v["step"] == "flaky")
        .collect();
    let seen: Vec<(String, i64)> = ends
        .iter()
        .map(|v| {
            (
                v["msg"].as_str().unwrap_or_default().to_string(),
                v["attempt"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("workflow step failed, will retry".to_string(), 1),
            ("workflow step failed, will retry".to_string(), 2),
            ("workflow step complete".to_string(), 3)
        ],
        "{log}"
    );
    assert!(ends.iter().all(|v| v["workflow"] == "Retry"), "{ends:?}");
    // Linear backoff of 100 ms: the retries were 100 ms then 200 ms apart at least.
    let gaps: Vec<f64> = c
        .query(
            "SELECT extract(epoch FROM at - lag(at) OVER (ORDER BY id))::float8
               FROM runner.workflow_history
              WHERE instance_id = 'flaky' AND step_name = 'flaky' AND status = 'running'
              ORDER BY id",
            &[],
        )
        .await
        .expect("history")
        .iter()
        .filter_map(|r| r.get::<_, Option<f64>>(0))
        .collect();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert!(gaps[0] >= 0.1 && gaps[1] >= 0.2, "{gaps:?}");
    // /metrics: each ended step.do attempt by outcome (retries: flaky's two and exhaust's one),
    // and the instances by status.
    let addr = r.listen_addr(Duration::from_secs(10));
    let (s, text) = tokio::task::spawn_blocking(move || request(&addr, "GET", "/metrics", "", ""))
        .await
        .expect("join")
        .expect("request");
    assert_eq!(s, 200);
    let step = "runner_workflow_step_duration_seconds";
    for line in [
        format!(r#"{step}_count{{workflow="Retry",outcome="complete"}} 1"#),
        format!(r#"{step}_count{{workflow="Retry",outcome="retry"}} 3"#),
        format!(r#"{step}_count{{workflow="Retry",outcome="errored"}} 4"#),
        r#"runner_workflow_instances{workflow="Retry",status="complete"} 3"#.to_string(),
        r#"runner_workflow_instances{workflow="Retry",status="errored"} 2"#.to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    // slow's one attempt ran into its 200 ms timeout.
    let errored_sum: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                r#"{step}_sum{{workflow="Retry",outcome="errored"}} "#
            ))
        })
        .and_then(|v| v.parse().ok())
        .expect("the errored attempts' sum");
    assert!(errored_sum >= 0.2, "{errored_sum}");
}

/// Code changed under a sleeping instance: the replay meets another step than recorded, and the
/// instance fails with an error that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_that_meets_another_step_fails_the_instance_clearly() {
    let v1 = r#"
export class Change extends WorkflowEntrypoint {
  async run(event, step) {
    await step.do('charge', async () => 1);
    await step.sleep('wait', '2 seconds');
    return 'v1';
  }
}"#;
    let (pg, mut c) = start("change", v1, r#"{"CHANGE": "Change"}"#).await;
    let _r = serve("wf-change", &pg);
    c.execute("SELECT runner.workflow_create('Change', 'c1')", &[])
        .await
        .expect("create");
    wait_status(&c, "c1", "waiting", Duration::from_secs(20)).await;
    let v2 = v1.replace("'charge'", "'refund'");
    deploy(&mut c, "change", &v2, r#"{"CHANGE": "Change"}"#).await;
    wait_status(&c, "c1", "errored", Duration::from_secs(20)).await;
    let error = outcome(&c, "c1").await.1.unwrap_or_default();
    assert!(
        error.contains("replay mismatch")
            && error.contains("\"charge\"")
            && error.contains("\"refund\""),
        "{error}"
    );
}

/// `env.FLOW` in a worker's fetch handler: create (idempotent by id), sendEvent, get().status();
/// the script cannot make bindings of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_binding_creates_and_reads_instances() {
    let (pg, c) = start("flows", FLOW, r#"{"FLOW": "Flow"}"#).await;
    let r = serve("wf-binding", &pg);
    let addr = r.listen_addr(Duration::from_secs(10));
    let body = tokio::task::spawn_blocking(move || raw_get(&addr, "flows.workers.test"))
        .await
        .expect("join")
        .expect("request");
    assert!(
        body.contains(r#""id":"from-binding""#)
            && body.contains(r#""same":true"#)
            && body.contains(r#""maker":"undefined""#),
        "{body}"
    );
    wait_status(&c, "from-binding", "complete", Duration::from_secs(20)).await;
    let out = outcome(&c, "from-binding").await.0;
    assert_eq!(out, serde_json::json!({"a": 2, "b": 10, "total": 6}));
}

/// The HTTP API: no token or a wrong one is a 401 and starts nothing; with the token an
/// instance is started, sent its event, read with its steps, and a finished one refuses `pause`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_needs_its_token_then_starts_signals_and_reads_instances() {
    let (pg, c) = start("flows", FLOW, r#"{"FLOW": "Flow"}"#).await;
    let r = serve_with(
        "wf-http",
        &pg,
        &[("RUNNER_WORKFLOWS_TOKEN", "s3cret-token-for-the-test")],
    );
    let addr = r.listen_addr(Duration::from_secs(10));
    let call =
        |method: &'static str, path: &'static str, token: &'static str, body: &'static str| {
            let addr = addr.clone();
            async move {
                tokio::task::spawn_blocking(move || request(&addr, method, path, token, body))
                    .await
                    .expect("join")
                    .expect("request")
            }
        };
    let start = r#"{"id": "h1", "params": {"n": 1}}"#;
    let (s, _) = call("POST", "/workflows/Flow", "", start).await;
    assert_eq!(s, 401);
    let (s, _) = call(
        "POST",
        "/workflows/Flow",
        "s3cret-token-for-the-tesX",
        start,
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(
        one(&c, "SELECT count(*) FROM runner.workflow_instances").await,
        0,
        "nothing started"
    );
    let token = "s3cret-token-for-the-test";
    let (s, b) = call("POST", "/workflows/Flow", token, start).await;
    assert_eq!((s, b.as_str()), (202, r#"{"id":"h1"}"#));
    let (s, _) = call(
        "POST",
        "/workflows/Flow/h1/events/approved",
        token,
        r#"{"k": 5}"#,
    )
    .await;
    assert_eq!(s, 202);
    wait_status(&c, "h1", "complete", Duration::from_secs(20)).await;
    let (s, b) = call("GET", "/workflows/Flow/h1", token, "").await;
    assert_eq!(s, 200, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).expect("status JSON");
    assert_eq!(v["status"], "complete");
    assert_eq!(
        v["output"],
        serde_json::json!({"a": 2, "b": 10, "total": 6})
    );
    assert_eq!(v["steps"].as_array().map(Vec::len), Some(7), "{v}");
    assert!(
        v["steps"][1]["duration_ms"]
            .as_f64()
            .is_some_and(|d| d >= 900.0),
        "{v}"
    );
    // ?wait: a finished instance answers at once with its outcome; one that waits for an
    // event answers 202 when the wait is over.
    let (s, b) = call("POST", "/workflows/Flow?wait=5", token, start).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.contains(r#""status":"complete""#), "{b}");
    let t = Instant::now();
    let (s, b) = call(
        "POST",
        "/workflows/Flow?wait=1",
        token,
        r#"{"id": "h2", "params": {"n": 1}}"#,
    )
    .await;
    assert_eq!((s, b.as_str()), (202, r#"{"id":"h2"}"#));
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    let (s, _) = call("GET", "/workflows/Flow/nope", token, "").await;
    assert_eq!(s, 404);
    let (s, b) = call(
        "PATCH",
        "/workflows/Flow/h1/status",
        token,
        r#"{"action": "pause"}"#,
    )
    .await;
    assert_eq!(s, 400);
    assert!(b.contains("is complete"), "{b}");
    let (s, b) = call("POST", "/workflows/Flow", token, r#"{"id": "bad id"}"#).await;
    assert_eq!(s, 400);
    assert!(b.contains("a-zA-Z0-9"), "{b}");
}

/// One HTTP/1.1 request with a JSON body and a bearer token (none when empty): status and body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    c.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

/// `step.createHook`: a POST to the hook's URL resumes the instance, with the workflows API
/// off (the URL's token is the credential); a second payload sent early is kept for the next
/// `wait()`; a wrong or malformed token is 404 and a body that is not JSON 400, nothing
/// delivered; a finished instance takes no more; after `restart` the hook keeps its token and
/// the payloads go back to the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_resume_a_workflow_from_their_url_without_the_api_token() {
    let src = r#"
export class Hooked extends WorkflowEntrypoint {
  async run(event, step) {
    const hook = await step.createHook('callback');
    const url = await step.do('publish', async () => {
      await this.env.QUEUE.send({ i: event.instanceId, s: 'publish' }, { queue: 'effects' });
      return hook.url;
    });
    const first = await hook.wait({ timeout: '1 minute' });
    const second = await hook.wait({ timeout: '1 minute' });
    return { first: first.payload, second: second.payload, url, same: url === hook.url };
  }
}"#;
    let (pg, c) = start("hooked", src, r#"{"HOOKED": "Hooked"}"#).await;
    let r = serve("wf-hooks", &pg);
    let pool = runner::db::pool(&pg.url, 2).expect("pool");
    let addr = r.listen_addr(Duration::from_secs(10));
    let post = |path: String, body: &'static str| {
        let addr = addr.clone();
        async move {
            tokio::task::spawn_blocking(move || request(&addr, "POST", &path, "", body))
                .await
                .expect("join")
                .expect("request")
        }
    };
    c.execute("SELECT runner.workflow_create('Hooked', 'k1', '{}')", &[])
        .await
        .expect("create");
    wait_status(&c, "k1", "waiting", Duration::from_secs(20)).await;
    let token: String = c
        .query_one(
            "SELECT output->>'token' FROM runner.workflow_steps
              WHERE instance_id = 'k1' AND kind = 'hook'",
            &[],
        )
        .await
        .expect("hook step")
        .get(0);
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    let url = format!("/workflows/hooks/{token}");
    // The API itself stays off.
    let (s, _) = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || request(&addr, "GET", "/workflows/Hooked/k1", "", "")
    })
    .await
    .expect("join")
    .expect("request");
    assert_eq!(s, 404);
    let (s, b) = post(format!("/workflows/hooks/{}", "0".repeat(64)), "{}").await;
    assert_eq!(s, 404, "{b}");
    let (s, _) = post("/workflows/hooks/not-a-token".into(), "{}").await;
    assert_eq!(s, 404);
    let (s, b) = post(url.clone(), "{not json").await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        one(&c, "SELECT count(*) FROM runner.workflow_events").await,
        0,
        "nothing delivered by a bad call"
    );
    let (s, b) = post(url.clone(), r#"{"n": 1}"#).await;
    assert_eq!((s, b.as_str()), (202, r#"{"accepted":true}"#));
    let (s, _) = post(url.clone(), r#"{"n": 2}"#).await;
    assert_eq!(s, 202);
    wait_status(&c, "k1", "complete", Duration::from_secs(20)).await;
    let want = serde_json::json!({"first": {"n": 1}, "second": {"n": 2}, "url": url, "same": true});
    assert_eq!(outcome(&c, "k1").await.0, want);
    assert_eq!(effects(&c, "k1", "publish").await, 1);
    let (s, b) = post(url.clone(), r#"{"n": 3}"#).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("takes no more events"), "{b}");
    // restart: the run starts from the top, meets the same hook, takes the same payloads again.
    runner::workflow::api::control(&pool, "k1", "restart")
        .await
        .expect("restart");
    wait_status(&c, "k1", "complete", Duration::from_secs(20)).await;
    assert_eq!(outcome(&c, "k1").await.0, want);
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM runner.workflow_hooks WHERE instance_id = 'k1'"
        )
        .await,
        1
    );
    // A second instance gets a hook of its own.
    c.execute("SELECT runner.workflow_create('Hooked', 'k2', '{}')", &[])
        .await
        .expect("create");
    wait_status(&c, "k2", "waiting", Duration::from_secs(20)).await;
    assert_eq!(
        one(
            &c,
            "SELECT count(DISTINCT token) FROM runner.workflow_hooks WHERE instance_id IN ('k1', 'k2')"
        )
        .await,
        2
    );
}

/// Retention: instances that finished (complete, errored, terminated) longer ago than
/// `RUNNER_WORKFLOW_RETENTION_DAYS` are deleted with their steps, events, hooks and history by
/// a replica (at its start, then every minute); a waiting instance and a recently finished one
/// stay. A retention that is not a positive number stops `runner serve` with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_instances_are_deleted_after_the_retention_with_their_rows() {
    let src = r#"
export class Kept extends WorkflowEntrypoint {
  async run(event, step) {
    const hook = await step.createHook('h');
    await step.do('a', async () => 1);
    if (event.payload.mode === 'wait') await hook.wait({ timeout: '1 hour' });
    if (event.payload.mode === 'fail') throw new NonRetryableError('no');
    return 'ok';
  }
}"#;
    let (pg, c) = start("kept", src, r#"{"KEPT": "Kept"}"#).await;
    let pool = runner::db::pool(&pg.url, 2).expect("pool");
    {
        let _r = serve("wf-ret-1", &pg);
        let instances = [
            ("old-done", "{}", "complete"),
            ("old-failed", r#"{"mode": "fail"}"#, "errored"),
            ("old-term", r#"{"mode": "wait"}"#, "waiting"),
            ("waiting", r#"{"mode": "wait"}"#, "waiting"),
            ("new-done", "{}", "complete"),
        ];
        for (id, params, _) in instances {
            let params: serde_json::Value = serde_json::from_str(params).expect("params");
            runner::workflow::api::create(&pool, "Kept", Some(id), &params)
                .await
                .expect("create");
        }
        for (id, _, want) in instances {
            wait_status(&c, id, want, Duration::from_secs(20)).await;
        }
        runner::workflow::api::control(&pool, "old-term", "terminate")
            .await
            .expect("terminate");
        runner::workflow::api::send_event(&pool, "waiting", "other", &serde_json::json!(1))
            .await
            .expect("an event");
    }
    c.batch_execute(
        "UPDATE runner.workflow_instances SET finished_at = now() - interval '2 days'
          WHERE id IN ('old-done', 'old-failed', 'old-term')",
    )
    .await
    .expect("age");
    let rows = |ids: &'static str| {
        let c = &c;
        async move {
            let mut n = 0;
            for t in ["workflow_steps", "workflow_hooks", "workflow_history"] {
                n += one(
                    c,
                    &format!("SELECT count(*) FROM runner.{t} WHERE instance_id IN ({ids})"),
                )
                .await;
            }
            n
        }
    };
    assert!(rows("'old-done', 'old-failed', 'old-term'").await > 0);

    // A retention that is not a positive number of days is refused.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["serve", "--id", "wf-ret-bad"])
        .env("RUNNER_DATABASE_URL", &pg.url)
        .env("RUNNER_LISTEN", "127.0.0.1:0")
        .env("RUNNER_WORKFLOW_RETENTION_DAYS", "0")
        .output()
        .expect("runner serve");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("RUNNER_WORKFLOW_RETENTION_DAYS is 0; it must be a positive number of days"),
        "{said}"
    );
    assert_eq!(
        one(&c, "SELECT count(*) FROM runner.workflow_instances").await,
        5
    );

    let _r = serve_with("wf-ret-2", &pg, &[("RUNNER_WORKFLOW_RETENTION_DAYS", "1")]);
    wait_for(
        "the old instances to go",
        Duration::from_secs(20),
        || async {
            let left = one(
                &c,
                "SELECT count(*) FROM runner.workflow_instances
              WHERE id IN ('old-done', 'old-failed', 'old-term')",
            )
            .await;
            (left == 0).then_some(())
        },
    )
    .await;
    assert_eq!(rows("'old-done', 'old-failed', 'old-term'").await, 0);
    assert_eq!(status(&c, "waiting").await, "waiting");
    assert_eq!(status(&c, "new-done").await, "complete");
    assert!(rows("'waiting', 'new-done'").await > 0);
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM runner.workflow_events WHERE instance_id = 'waiting'"
        )
        .await,
        1
    );
}

/// A caught waitForEvent timeout; pause holds an instance past its timer until resume; a
/// terminated instance does not run again until restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_timeout_is_catchable_and_pause_resume_terminate_restart() {
    let src = r#"
export class Ctl extends WorkflowEntrypoint {
  async run(event, step) {
    if (event.payload.mode === 'timeout') {
      try { await step.waitForEvent('never', { type: 'x', timeout: '1 second' }); return 'no'; }
      catch (e) { return 'caught ' + e.name; }
    }
    await step.sleep('s', '1 second');
    await step.do('after', async () => {
      await this.env.QUEUE.send({ i: event.instanceId, s: 'after' }, { queue: 'effects' });
      return 1;
    });
    return 'resumed';
  }
}"#;
    let (pg, c) = start("ctl", src, r#"{"CTL": "Ctl"}"#).await;
    let _r = serve("wf-ctl", &pg);
    let pool = runner::db::pool(&pg.url, 2).expect("pool");
    c.batch_execute(
        "SELECT runner.workflow_create('Ctl', 'timeout', '{\"mode\": \"timeout\"}');
         SELECT runner.workflow_create('Ctl', 'p', '{}');
         SELECT runner.workflow_create('Ctl', 't', '{}');",
    )
    .await
    .expect("create");
    wait_status(&c, "p", "waiting", Duration::from_secs(20)).await;
    wait_status(&c, "t", "waiting", Duration::from_secs(20)).await;
    runner::workflow::api::control(&pool, "p", "pause")
        .await
        .expect("pause");
    runner::workflow::api::control(&pool, "t", "terminate")
        .await
        .expect("terminate");
    // Both wake-up jobs ran (after the 1 s timer) and found nothing to do.
    wait_for("the wake-ups to pass", Duration::from_secs(20), || async {
        let open = one(
            &c,
            "SELECT count(*) FROM runner.jobs WHERE queue = 'workflows' AND state <> 'done'
                AND payload->>'instance' IN ('p', 't')",
        )
        .await;
        (open == 0).then_some(())
    })
    .await;
    assert_eq!(status(&c, "p").await, "paused");
    assert_eq!(status(&c, "t").await, "terminated");
    assert_eq!(effects(&c, "p", "after").await, 0);
    runner::workflow::api::control(&pool, "p", "resume")
        .await
        .expect("resume");
    wait_status(&c, "p", "complete", Duration::from_secs(20)).await;
    wait_status(&c, "timeout", "complete", Duration::from_secs(20)).await;
    assert_eq!(effects(&c, "p", "after").await, 1);
    assert_eq!(effects(&c, "t", "after").await, 0);
    let out = outcome(&c, "timeout").await.0;
    assert_eq!(out, serde_json::json!("caught WorkflowTimeoutError"));
    let e = runner::workflow::api::control(&pool, "t", "pause")
        .await
        .expect_err("a finished instance cannot pause");
    assert!(e.to_string().contains("is terminated"), "{e}");
    // restart: the terminated instance runs again from the start.
    runner::workflow::api::control(&pool, "t", "restart")
        .await
        .expect("restart");
    wait_status(&c, "t", "complete", Duration::from_secs(20)).await;
    assert_eq!(effects(&c, "t", "after").await, 1);
}

/// Load with a fault, scaled for CI: 100 instances of 5 steps on two replicas, one SIGKILLed
/// mid-run. All complete, none lost; a step body ran more than once only when it was in flight
/// at the kill (never more often than its recorded attempts); the test prints how many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_instances_survive_a_replica_sigkill_and_none_runs_twice() {
    let src = r#"
export class Five extends WorkflowEntrypoint {
  async run(event, step) {
    let sum = 0;
    for (const s of ['s1', 's2', 's3', 's4', 's5']) {
      sum += await step.do(s, async () => {
        await this.env.QUEUE.send({ i: event.instanceId, s }, { queue: 'effects' });
        await new Promise((r) => setTimeout(r, 5));
        return 1;
      });
    }
    return sum;
  }
}"#;
    let (pg, c) = start("five", src, r#"{"FIVE": "Five"}"#).await;
    c.execute(
        "SELECT runner.workflow_create('Five', 'n' || g) FROM generate_series(1, 100) g",
        &[],
    )
    .await
    .expect("create 100");
    let started = Instant::now();
    let mut victim = serve("wf-load-victim", &pg);
    let _survivor = serve("wf-load-survivor", &pg);
    let complete = "SELECT count(*) FROM runner.workflow_instances WHERE status = 'complete'";
    let at_kill = wait_for(
        "the victim to be mid-run",
        Duration::from_secs(30),
        || async {
            let done = one(&c, complete).await;
            let held = one(
                &c,
                "SELECT count(*) FROM runner.jobs
                  WHERE queue = 'workflows' AND state = 'running' AND locked_by = 'wf-load-victim'",
            )
            .await;
            (done >= 10 && held > 0).then_some(done)
        },
    )
    .await;
    victim.child.kill().expect("SIGKILL");
    victim.child.wait().expect("reaping the victim");
    wait_for("all 100 to complete", Duration::from_secs(60), || async {
        (one(&c, complete).await == 100).then_some(())
    })
    .await;
    let took = started.elapsed();
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM runner.workflow_instances WHERE output <> '5'"
        )
        .await,
        0
    );
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM runner.workflow_steps WHERE status = 'complete'"
        )
        .await,
        500
    );
    // A step's body ran at most once per recorded attempt (an attempt may die before its body
    // does anything), exactly once when it took one attempt; ran twice = in flight at the kill.
    let effects_per_step = "(SELECT count(*) FROM runner.jobs e
                               WHERE e.queue = 'effects' AND e.payload->>'i' = s.instance_id
                                 AND e.payload->>'s' = s.name)";
    let mismatched = one(
        &c,
        &format!(
            "SELECT count(*) FROM runner.workflow_steps s
              WHERE {effects_per_step} > s.attempt OR (s.attempt = 1 AND {effects_per_step} <> 1)"
        ),
    )
    .await;
    assert_eq!(mismatched, 0);
    let reruns = one(
        &c,
        &format!("SELECT count(*) FROM runner.workflow_steps s WHERE {effects_per_step} > 1"),
    )
    .await;
    assert!(
        reruns <= 1,
        "only the step in flight at the kill runs again: {reruns}"
    );
    println!(
        "workflow-load: 100 instances x 5 steps on 2 replicas, one SIGKILLed after {at_kill} \
         had completed; all 100 complete in {took:.2?}; lost: 0; step bodies re-run: {reruns} \
         (in flight at the kill), completed steps re-run: 0"
    );
}

/// A workflow longer than its worker's wall time: each run stops before its next step once it
/// has used half of it, and the next run goes on at once; nothing is cut, every step runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_longer_than_the_wall_time_continues_in_new_runs() {
    let src = r#"
export class Long extends WorkflowEntrypoint {
  async run(event, step) {
    for (let i = 1; i <= 5; i++) {
      await step.do('part', async () => {
        await this.env.QUEUE.send({ i: event.instanceId, s: 'part' }, { queue: 'effects' });
        await new Promise((r) => setTimeout(r, 300));
        return i;
      });
    }
    return 'all five';
  }
}"#;
    let (pg, c) = start("long", src, r#"{"LONG": "Long"}"#).await;
    c.execute(
        "UPDATE runner.workers SET wall_ms = 1000 WHERE name = 'long'",
        &[],
    )
    .await
    .expect("a 1 s wall time");
    let _r = serve("wf-long", &pg);
    c.execute("SELECT runner.workflow_create('Long', 'l1')", &[])
        .await
        .expect("create");
    wait_status(&c, "l1", "complete", Duration::from_secs(20)).await;
    assert_eq!(outcome(&c, "l1").await.0, serde_json::json!("all five"));
    assert_eq!(effects(&c, "l1", "part").await, 5);
    let runs = one(
        &c,
        "SELECT runs::bigint FROM runner.workflow_instances WHERE id = 'l1'",
    )
    .await;
    assert!(
        runs >= 3,
        "1.5 s of steps in runs of at most 0.5 s: {runs} runs"
    );
}

/// `runner workflow ARGS` (what `stackctl workflow` runs in a runner container): exit code,
/// stdout, stderr.
fn admin(pg: &Pg, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("workflow")
        .args(args)
        .env("RUNNER_DATABASE_URL", &pg.url)
        .output()
        .expect("runner workflow");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The operator's CLI: start (idempotent by id, params checked), status with every step, list
/// filtered by status, send-event resumes a waiting instance, pause/resume/terminate/restart, and
/// each refusal exits 2 (bad input, a finished instance) or 3 (no such instance) with a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_starts_reads_lists_signals_and_controls_instances() {
    let src = r#"
export class Order extends WorkflowEntrypoint {
  async run(event, step) {
    const n = await step.do('reserve', async () => event.payload.n * 2);
    const ev = await step.waitForEvent('paid', { type: 'paid', timeout: '1 minute' });
    return { n, by: ev.payload.by };
  }
}"#;
    let (pg, c) = start("orders", src, r#"{"ORDER": "Order"}"#).await;
    let _r = serve("wf-admin", &pg);

    let (code, out, err) = admin(
        &pg,
        &["start", "Order", "--id", "o-1", "--params", r#"{"n": 21}"#],
    );
    assert_eq!((code, out.as_str()), (0, "o-1\n"), "{err}");
    let (code, out, _) = admin(
        &pg,
        &["start", "Order", "--id", "o-1", "--params", r#"{"n": 99}"#],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "o-1\n"),
        "the same id starts nothing"
    );
    let (code, out, err) = admin(&pg, &["start", "Order"]);
    assert_eq!(code, 0, "{err}");
    let random = out.trim().to_string();
    assert_eq!(random.len(), 32, "{out}");
    wait_status(&c, "o-1", "waiting", Duration::from_secs(20)).await;

    let (code, out, _) = admin(&pg, &["status", "o-1"]);
    assert_eq!(code, 0);
    assert!(out.contains("status    waiting"), "{out}");
    assert!(out.contains("params    {\"n\":21}"), "{out}");
    assert!(out.contains("reserve#1"), "{out}");
    assert!(out.contains("paid#1"), "{out}");
    let (_, out, _) = admin(&pg, &["status", "o-1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(v["steps"][0]["output"], 42);

    let (code, out, _) = admin(&pg, &["list", "--status", "waiting", "--json"]);
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("list --json");
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec!["o-1", random.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let (_, out, _) = admin(&pg, &["list"]);
    assert!(out.starts_with("ID "), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");

    let (code, out, err) = admin(
        &pg,
        &["send-event", "o-1", "paid", "--payload", r#"{"by": "ann"}"#],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sent to workflow instance o-1"), "{out}");
    wait_status(&c, "o-1", "complete", Duration::from_secs(20)).await;
    assert_eq!(
        outcome(&c, "o-1").await.0,
        serde_json::json!({"n": 42, "by": "ann"})
    );

    // Control: pause, resume, terminate, then restart runs it from the start.
    let (code, out, _) = admin(&pg, &["pause", &random]);
    assert_eq!(
        (code, out),
        (0, format!("workflow instance {random} is paused\n"))
    );
    let (code, out, _) = admin(&pg, &["resume", &random]);
    assert_eq!(
        (code, out),
        (0, format!("workflow instance {random} is queued\n"))
    );
    wait_status(&c, &random, "waiting", Duration::from_secs(20)).await;
    let (code, _, _) = admin(&pg, &["terminate", &random]);
    assert_eq!(code, 0);
    assert_eq!(status(&c, &random).await, "terminated");
    let (code, _, _) = admin(&pg, &["restart", &random]);
    assert_eq!(code, 0);
    wait_status(&c, &random, "waiting", Duration::from_secs(20)).await;

    // Refusals: what was wrong, and the exit code stackctl reads as the user's to fix.
    let (code, _, err) = admin(&pg, &["pause", "o-1"]);
    assert_eq!(code, 2);
    assert!(err.contains("o-1 is complete: it cannot pause"), "{err}");
    let (code, _, err) = admin(&pg, &["status", "nope"]);
    assert_eq!(code, 3);
    assert!(err.contains("unknown workflow instance nope"), "{err}");
    let (code, _, err) = admin(&pg, &["start", "Nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown workflow Nope"), "{err}");
    let (code, _, err) = admin(&pg, &["start", "Order", "--id", "bad id!"]);
    assert_eq!(code, 2);
    assert!(err.contains("malformed workflow instance id"), "{err}");
    let (code, _, err) = admin(&pg, &["start", "Order", "--params", "{n:"]);
    assert_eq!(code, 2);
    assert!(err.contains("--params is not JSON"), "{err}");
    let (code, _, err) = admin(&pg, &["list", "--status", "sleeping"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown status \"sleeping\""), "{err}");
    assert_eq!(
        one(&c, "SELECT count(*) FROM runner.workflow_instances").await,
        2,
        "no refused command started anything"
    );
}
