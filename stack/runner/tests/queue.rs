use std::time::{Duration, Instant};

use crate::support::{Pg, Proc, connect, wait_for};

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

/// Who consumes the queue in [`sigkill_run`].
#[derive(Clone, Copy, Debug)]
enum Consumers {
    /// `runner queue work`: the built-in no-op consumer (500 µs a job).
    QueueWork,
    /// `runner serve` replicas running a deployed JavaScript worker's `queue()` handler.
    ServeWithJsWorker,
}

/// 10,000 jobs enqueued with runner.enqueue(); two `runner queue work` processes; one is
/// SIGKILLed mid-run. Every job completes; jobs that ran twice are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_survives_sigkill_of_a_consumer() {
    sigkill_run(Consumers::QueueWork).await;
}

/// The same with two `runner serve` replicas whose JavaScript worker consumes the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_survives_sigkill_of_a_serve_replica() {
    sigkill_run(Consumers::ServeWithJsWorker).await;
}

async fn sigkill_run(kind: Consumers) {
    let queue = match kind {
        Consumers::QueueWork => "kill-test",
        Consumers::ServeWithJsWorker => "kill-js",
    };
    let pg = Pg::start().await;
    let c = connect(&pg.url).await;
    if let Consumers::ServeWithJsWorker = kind {
        c.execute(
            "SELECT runner.deploy('consumer', $1, queues => ARRAY['kill-js'])",
            &[&"export default { async queue(batch) {
                  await new Promise((r) => setTimeout(r, 50));
                  batch.ackAll();
                } };"],
        )
        .await
        .expect("deploying the consumer worker");
    }
    let t0 = Instant::now();
    c.execute(
        "SELECT runner.enqueue($1, jsonb_build_object('n', g)) FROM generate_series(1, 10000) g",
        &[&queue],
    )
    .await
    .expect("enqueueing");
    let enqueue_took = t0.elapsed();
    let in_queue = format!("SELECT count(*) FROM runner.jobs WHERE queue = '{queue}'");
    assert_eq!(count(&c, &in_queue).await, 10_000);

    let spawn = |id: &'static str| match kind {
        Consumers::QueueWork => Proc::spawn(
            id,
            &[
                "queue",
                "work",
                "--queue",
                queue,
                "--job-us",
                "500",
                "--batch",
                "100",
                "--lease-secs",
                "2",
                "--poll-secs",
                "0.25",
                "--id",
                id,
            ],
            &[("RUNNER_DATABASE_URL", pg.url.as_str())],
        ),
        Consumers::ServeWithJsWorker => Proc::spawn(
            id,
            &["serve", "--id", id],
            &[
                ("RUNNER_DATABASE_URL", pg.url.as_str()),
                ("RUNNER_LISTEN", "127.0.0.1:0"),
                ("RUNNER_BATCH", "100"),
                ("RUNNER_LEASE_SECS", "2"),
                ("RUNNER_POLL_SECS", "0.25"),
            ],
        ),
    };
    let started = Instant::now();
    let mut victim = spawn("victim");
    let _survivor = spawn("survivor");

    // Kill once the victim has done real work and holds a lease.
    let done =
        format!("SELECT count(*) FROM runner.jobs WHERE queue = '{queue}' AND state = 'done'");
    let done_at_kill = wait_for(
        "the victim to complete jobs",
        Duration::from_secs(30),
        || async {
            let d = count(&c, &done).await;
            let held = count(
                &c,
                "SELECT count(*) FROM runner.jobs WHERE state = 'running' AND locked_by = 'victim'",
            )
            .await;
            (d >= 2_000 && held > 0).then_some((d, held))
        },
    )
    .await;
    victim.child.kill().expect("SIGKILL");
    victim.child.wait().expect("reaping the victim");
    let killed_at = started.elapsed();

    wait_for("every job to be done", Duration::from_secs(90), || async {
        (count(&c, &done).await == 10_000).then_some(())
    })
    .await;
    let total = started.elapsed();

    let lost = count(
        &c,
        &format!("SELECT count(*) FROM runner.jobs WHERE queue = '{queue}' AND state <> 'done'"),
    )
    .await;
    let twice = count(
        &c,
        &format!("SELECT count(*) FROM runner.jobs WHERE queue = '{queue}' AND attempts > 1"),
    )
    .await;
    let by_victim_unfinished = done_at_kill.1;
    let distinct = count(
        &c,
        &format!("SELECT count(DISTINCT payload->>'n') FROM runner.jobs WHERE queue = '{queue}' AND state = 'done'"),
    )
    .await;
    println!(
        "queue-kill ({kind:?}): enqueued 10000 jobs with runner.enqueue() in {enqueue_took:.2?}; \
         SIGKILLed one of two consumers at {killed_at:.2?} ({} done, {by_victim_unfinished} leased by it); \
         all 10000 done after {total:.2?}; lost: {lost}; ran twice (re-delivered after lease expiry): {twice}",
        done_at_kill.0
    );
    assert_eq!(lost, 0);
    assert_eq!(distinct, 10_000);
    assert!(
        (1..=100).contains(&twice),
        "re-deliveries should be the victim's last batch, got {twice}"
    );
}

/// Failures retry with backoff, then go dead with the last error; retry-dead revives them.
/// Release on shutdown gives the attempt back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_backoff_dead_letters_and_stats() {
    use runner::queue;
    let pg = Pg::start().await;
    let c = connect(&pg.url).await;
    let id: i64 = c
        .query_one(
            "SELECT runner.enqueue('r', '{\"x\":1}', max_attempts => 2)",
            &[],
        )
        .await
        .expect("enqueue")
        .get(0);
    let lease = Duration::from_secs(30);
    let jobs = queue::claim(&c, "r", "me", 10, lease).await.expect("claim");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, id);
    assert!(
        queue::claim(&c, "r", "other", 10, lease)
            .await
            .expect("claim")
            .is_empty(),
        "leased job is not claimable"
    );
    queue::fail(&c, "me", &[(id, "boom 1".into())])
        .await
        .expect("fail");
    let (state, delay): (String, f64) = {
        let r = c
            .query_one("SELECT state, extract(epoch FROM run_at - now())::float8 FROM runner.jobs WHERE id = $1", &[&id])
            .await
            .expect("row");
        (r.get(0), r.get(1))
    };
    assert_eq!(state, "ready");
    assert!(
        (0.9..=2.1).contains(&delay),
        "first backoff is 2^1 s with jitter, got {delay}"
    );
    c.execute(
        "UPDATE runner.jobs SET run_at = now() WHERE id = $1",
        &[&id],
    )
    .await
    .expect("fast-forward");
    let jobs = queue::claim(&c, "r", "me", 10, lease).await.expect("claim");
    assert_eq!(jobs[0].attempts, 2);
    queue::fail(&c, "me", &[(id, "boom 2".into())])
        .await
        .expect("fail");
    let r = c
        .query_one(
            "SELECT state, last_error FROM runner.jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("row");
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, String>(1)),
        ("dead".into(), "boom 2".into())
    );

    let stats = queue::stats(&c).await.expect("stats");
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].dead, 1);
    print!("{}", queue::render_stats(&stats));
    assert_eq!(queue::retry_dead(&c, Some("r")).await.expect("retry"), 1);

    // Release gives the attempt back; an expired lease is reaped back to ready.
    let jobs = queue::claim(&c, "r", "me", 10, lease).await.expect("claim");
    assert_eq!(jobs[0].attempts, 1);
    queue::release(&c, "me", &[id]).await.expect("release");
    let jobs = queue::claim(&c, "r", "me", 10, Duration::from_millis(1))
        .await
        .expect("claim");
    assert_eq!(jobs[0].attempts, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(queue::reap_expired(&c).await.expect("reap"), 1);
    let r = c
        .query_one(
            "SELECT state, last_error FROM runner.jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("row");
    assert_eq!(r.get::<_, String>(0), "ready");
    assert!(r.get::<_, String>(1).contains("lease expired"));
    // A zombie that lost its lease cannot complete the job.
    assert_eq!(queue::complete(&c, "me", &[id]).await.expect("complete"), 0);
}

/// SIGTERM with a batch in hand and a short grace period: the consumer exits cleanly and gives
/// its leases back (attempt not counted), so the jobs are ready for another replica at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_unfinished_leases() {
    let pg = Pg::start().await;
    let c = connect(&pg.url).await;
    c.execute(
        "SELECT runner.enqueue('slow', '{}') FROM generate_series(1, 50)",
        &[],
    )
    .await
    .expect("enqueue");
    let env = [("RUNNER_DATABASE_URL", pg.url.as_str())];
    // 50 jobs x 200 ms = 10 s per batch; grace 0.5 s.
    let mut w = Proc::spawn(
        "slow",
        &[
            "queue",
            "work",
            "--queue",
            "slow",
            "--job-us",
            "200000",
            "--grace-secs",
            "0.5",
            "--id",
            "slow",
        ],
        &env,
    );
    wait_for(
        "the batch to be leased",
        Duration::from_secs(20),
        || async {
            (count(
                &c,
                "SELECT count(*) FROM runner.jobs WHERE state = 'running' AND locked_by = 'slow'",
            )
            .await
                == 50)
                .then_some(())
        },
    )
    .await;
    let t = Instant::now();
    let status = w.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    let ready = count(&c, "SELECT count(*) FROM runner.jobs WHERE state = 'ready' AND attempts = 0 AND locked_by IS NULL").await;
    assert_eq!(ready, 50);
    println!(
        "shutdown: SIGTERM with 50 jobs leased; exited cleanly in {:.2?} and released all 50 leases (attempts not counted)",
        t.elapsed()
    );
}
