use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{Pg, Proc, connect, healthcheck, wait_for};

/// A schedule firing every second, three `runner serve` replicas: every tick fires exactly
/// once, with no gap, over at least 20 ticks; SIGTERM stops each replica cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_fires_once_per_tick_across_three_replicas() {
    let pg = Pg::start().await;
    let c = connect(&pg.url).await;
    runner::cron::upsert_schedule(
        &c,
        "every-second",
        "* * * * * *",
        "UTC",
        "cron-test",
        &serde_json::json!({"k": "v"}),
    )
    .await
    .expect("schedule");
    // A worker with its own schedule: each tick runs scheduled(), which enqueues a job.
    c.execute(
        "SELECT runner.deploy('ticker', $1, cron => '* * * * * *')",
        &[&r#"export default { async scheduled(event, env) {
            await env.QUEUE.send({ at: event.scheduledTime }, { queue: 'ticks' });
        } };"#],
    )
    .await
    .expect("deploy ticker");
    let mut procs: Vec<Proc> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| {
            Proc::spawn(
                id,
                &["serve", "--id", id],
                &[
                    ("RUNNER_DATABASE_URL", pg.url.as_str()),
                    ("RUNNER_LISTEN", "127.0.0.1:0"),
                ],
            )
        })
        .collect();
    let ticks = 22;
    wait_for("22 fired ticks", Duration::from_secs(60), || async {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM runner.cron_ticks WHERE schedule = 'every-second'",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        (n >= ticks).then_some(())
    })
    .await;
    let addrs: Vec<String> = procs
        .iter()
        .map(|p| p.listen_addr(Duration::from_secs(10)))
        .collect();
    for a in &addrs {
        assert!(healthcheck(a), "runner healthcheck against {a} failed");
    }
    for p in &mut procs {
        let status = p.terminate(Duration::from_secs(30));
        assert!(status.success(), "{} exited with {status}", p.name);
    }
    for a in &addrs {
        assert!(
            !healthcheck(a),
            "runner healthcheck against stopped {a} succeeded"
        );
    }
    // Count the jobs themselves (not the guarded tick table): one job per tick.
    let rows = c
        .query(
            "SELECT (payload->>'scheduledTime')::timestamptz AS t, count(*)
               FROM runner.jobs WHERE queue = 'cron-test' GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("jobs per tick");
    let per_tick: Vec<(chrono::DateTime<chrono::Utc>, i64)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        per_tick.len() as i64 >= ticks,
        "only {} ticks fired",
        per_tick.len()
    );
    let dupes: Vec<_> = per_tick.iter().filter(|(_, n)| *n != 1).collect();
    assert!(dupes.is_empty(), "ticks fired more than once: {dupes:?}");
    for w in per_tick.windows(2) {
        assert_eq!(
            (w[1].0 - w[0].0).num_milliseconds(),
            1000,
            "gap between ticks {} and {}",
            w[0].0,
            w[1].0
        );
    }
    let by: BTreeMap<String, i64> = c
        .query(
            "SELECT fired_by, count(*) FROM runner.cron_ticks WHERE schedule = 'every-second' GROUP BY 1",
            &[],
        )
        .await
        .expect("by replica")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let payload_ok: i64 = c
        .query_one("SELECT count(*) FROM runner.jobs WHERE queue = 'cron-test' AND payload->>'k' = 'v' AND payload->>'schedule' = 'every-second'", &[])
        .await
        .expect("payload")
        .get(0);
    assert_eq!(payload_ok as usize, per_tick.len());
    let r = c
        .query_one(
            "SELECT count(*), count(DISTINCT payload->>'at') FROM runner.jobs WHERE queue = 'ticks'",
            &[],
        )
        .await
        .expect("ticks");
    let (ticker_jobs, ticker_distinct): (i64, i64) = (r.get(0), r.get(1));
    assert!(
        ticker_jobs >= 10,
        "the ticker worker ran {ticker_jobs} times"
    );
    assert_eq!(
        ticker_jobs, ticker_distinct,
        "a tick reached the worker twice"
    );
    println!(
        "cron: worker schedule via runner.deploy(cron => ...): scheduled() ran {ticker_jobs} times, once per tick, each enqueueing through env.QUEUE"
    );
    println!(
        "cron: {} consecutive one-second ticks, each fired exactly once by three replicas (fired by: {by:?}); `runner healthcheck` passed on each, all three stopped cleanly on SIGTERM and then failed the healthcheck",
        per_tick.len()
    );
}

/// After downtime, a schedule fires once for the latest missed tick, not once per tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_fire_once() {
    let pg = Pg::start().await;
    let mut c = connect(&pg.url).await;
    runner::cron::upsert_schedule(
        &c,
        "m",
        "* * * * *",
        "Europe/Paris",
        "q",
        &serde_json::json!({}),
    )
    .await
    .expect("schedule");
    c.execute("UPDATE runner.schedules SET next_tick = date_trunc('minute', now()) - interval '10 minutes'", &[])
        .await
        .expect("rewind");
    assert_eq!(runner::cron::fire_due(&mut c, "t").await.expect("fire"), 1);
    assert_eq!(runner::cron::fire_due(&mut c, "t").await.expect("fire"), 0);
    let r = c
        .query_one(
            "SELECT count(*), max((payload->>'missed')::int) FROM runner.jobs WHERE queue = 'q'",
            &[],
        )
        .await
        .expect("jobs");
    assert_eq!(r.get::<_, i64>(0), 1);
    assert_eq!(r.get::<_, Option<i32>>(1), Some(10));
    println!("cron-missed: 11 due ticks after downtime fired one job (missed = 10)");
}
