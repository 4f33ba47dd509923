//! The durable queue: SQL facade (claim, complete, fail, heartbeat, release, reap, stats)
//! and the consumer loop that drives a [`JobHandler`].
//!
//! A claim is a lease: `locked_until = now() + lease`, renewed by a heartbeat while the batch
//! runs. A runner that dies stops renewing; any live consumer's reaper puts the job back to
//! `ready` once the lease has ended (or `dead` if it has used all its attempts), so the job is
//! delivered again within `lease + poll` seconds. Delivery is therefore at-least-once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_postgres::GenericClient;
use tokio_util::sync::CancellationToken;

use crate::db::{DbError, conn};
use crate::metrics::Metrics;

/// One claimed job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: i64,
    pub queue: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub max_attempts: i32,
}

/// How one run of a job ended, as [`complete`] and [`fail`] record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded: the job is `done`.
    Done,
    /// It failed with attempts left: back to `ready` after a backoff.
    Retry,
    /// It failed on its last attempt: a dead letter.
    Dead,
}

impl Outcome {
    /// `job`'s outcome given its handler's result: `Dead` once the failed run was its last
    /// attempt (the rule `fail` applies in SQL; `attempts` already counts this run).
    pub fn of(job: &Job, result: &Result<(), String>) -> Outcome {
        match result {
            Ok(()) => Outcome::Done,
            Err(_) if job.attempts >= job.max_attempts => Outcome::Dead,
            Err(_) => Outcome::Retry,
        }
    }

    /// The `outcome` label of `runner_job_duration_seconds`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Retry => "retry",
            Outcome::Dead => "dead",
        }
    }
}

const CLAIM: &str = "
WITH fin AS (
    UPDATE runner.jobs
       SET state = 'done', finished_at = now(), locked_by = NULL, locked_until = NULL,
           last_error = NULL
     WHERE id = ANY($5) AND locked_by = $3 AND state = 'running'
), c AS (
    SELECT id FROM runner.jobs
    WHERE state = 'ready' AND queue = $1 AND run_at <= now()
    ORDER BY run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE runner.jobs j
   SET state = 'running', attempts = j.attempts + 1, locked_by = $3, started_at = now(),
       locked_until = now() + make_interval(secs => $4)
  FROM c
 WHERE j.id = c.id
RETURNING j.id, j.queue, j.payload, j.attempts, j.max_attempts";

/// Claim up to `limit` ready jobs of `queue` for `owner`, leased for `lease`.
pub async fn claim(
    client: &impl GenericClient,
    queue: &str,
    owner: &str,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Job>, DbError> {
    claim_completing(client, queue, owner, limit, lease, &[]).await
}

/// Mark `done` jobs done and claim the next batch in one statement (one round trip per
/// batch on the hot path).
pub async fn claim_completing(
    client: &impl GenericClient,
    queue: &str,
    owner: &str,
    limit: i64,
    lease: Duration,
    done: &[i64],
) -> Result<Vec<Job>, DbError> {
    let rows = client
        .query(
            CLAIM,
            &[&queue, &limit, &owner, &lease.as_secs_f64(), &done],
        )
        .await
        .map_err(|e| DbError::new(format!("claiming jobs of queue {queue}"), e))?;
    let mut jobs: Vec<Job> = rows
        .iter()
        .map(|r| Job {
            id: r.get(0),
            queue: r.get(1),
            payload: r.get(2),
            attempts: r.get(3),
            max_attempts: r.get(4),
        })
        .collect();
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

/// Mark jobs done (only those still leased by `owner`). One statement for the batch.
pub async fn complete(
    client: &impl GenericClient,
    owner: &str,
    ids: &[i64],
) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            "UPDATE runner.jobs SET state = 'done', finished_at = now(), locked_by = NULL,
                    locked_until = NULL, last_error = NULL
              WHERE id = ANY($1) AND locked_by = $2 AND state = 'running'",
            &[&ids, &owner],
        )
        .await
        .map_err(|e| DbError::new("completing jobs", e))
}

/// Record failures: retry with exponential backoff and jitter, or `dead` after max_attempts.
/// Backoff: min(2^attempts, 3600) seconds times a random factor in [0.5, 1.0).
pub async fn fail(
    client: &impl GenericClient,
    owner: &str,
    failures: &[(i64, String)],
) -> Result<u64, DbError> {
    if failures.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = failures.iter().map(|f| f.0).collect();
    let errors: Vec<&str> = failures.iter().map(|f| f.1.as_str()).collect();
    client
        .execute(
            "UPDATE runner.jobs j
                SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'ready' END,
                    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
                    run_at = now() + make_interval(secs =>
                        least(power(2, j.attempts), 3600) * (0.5 + random() / 2)),
                    last_error = f.error, locked_by = NULL, locked_until = NULL
               FROM unnest($1::bigint[], $2::text[]) AS f(id, error)
              WHERE j.id = f.id AND j.locked_by = $3 AND j.state = 'running'",
            &[&ids, &errors, &owner],
        )
        .await
        .map_err(|e| DbError::new("recording job failures", e))
}

/// Extend the lease of jobs still held by `owner`.
pub async fn heartbeat(
    client: &impl GenericClient,
    owner: &str,
    ids: &[i64],
    lease: Duration,
) -> Result<u64, DbError> {
    client
        .execute(
            "UPDATE runner.jobs SET locked_until = now() + make_interval(secs => $3)
              WHERE id = ANY($1) AND locked_by = $2 AND state = 'running'",
            &[&ids, &owner, &lease.as_secs_f64()],
        )
        .await
        .map_err(|e| DbError::new("renewing job leases", e))
}

/// Give back jobs that were claimed but not started (shutdown): the attempt is not counted.
pub async fn release(
    client: &impl GenericClient,
    owner: &str,
    ids: &[i64],
) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            "UPDATE runner.jobs SET state = 'ready', attempts = greatest(attempts - 1, 0),
                    locked_by = NULL, locked_until = NULL, run_at = now()
              WHERE id = ANY($1) AND locked_by = $2 AND state = 'running'",
            &[&ids, &owner],
        )
        .await
        .map_err(|e| DbError::new("releasing job leases", e))
}

/// Put jobs whose lease ended back to `ready` (immediately due) or `dead` if out of attempts.
pub async fn reap_expired(client: &impl GenericClient) -> Result<u64, DbError> {
    client
        .execute(
            "WITH x AS (
                SELECT id FROM runner.jobs
                 WHERE state = 'running' AND locked_until < now()
                 LIMIT 1000 FOR UPDATE SKIP LOCKED
             )
             UPDATE runner.jobs j
                SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'ready' END,
                    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
                    last_error = 'lease expired (held by ' || coalesce(j.locked_by, '?') || ')',
                    run_at = now(), locked_by = NULL, locked_until = NULL
               FROM x WHERE j.id = x.id",
            &[],
        )
        .await
        .map_err(|e| DbError::new("reaping expired leases", e))
}

/// Delete `done` jobs finished more than `older_than` ago.
pub async fn prune_done(client: &impl GenericClient, older_than: Duration) -> Result<u64, DbError> {
    client
        .execute(
            "DELETE FROM runner.jobs WHERE id IN (
                SELECT id FROM runner.jobs
                 WHERE state = 'done' AND finished_at < now() - make_interval(secs => $1)
                 LIMIT 10000)",
            &[&older_than.as_secs_f64()],
        )
        .await
        .map_err(|e| DbError::new("pruning finished jobs", e))
}

/// `queue retry-dead`: dead jobs (of one queue, or all) become ready with fresh attempts.
pub async fn retry_dead(client: &impl GenericClient, queue: Option<&str>) -> Result<u64, DbError> {
    client
        .execute(
            "UPDATE runner.jobs SET state = 'ready', attempts = 0, run_at = now(),
                    finished_at = NULL
              WHERE state = 'dead' AND ($1::text IS NULL OR queue = $1)",
            &[&queue],
        )
        .await
        .map_err(|e| DbError::new("retrying dead jobs", e))
}

pub use crate::queue_stats::{QueueStats, render_stats, stats};

/// What a handler does with a batch: one result per job, in order.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait JobHandler: Send + Sync + 'static {
    fn handle<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Result<(), String>>>;
}

/// A handler that takes `per_job` per job (one sleep per batch) and succeeds: tests and
/// benchmarks.
pub struct NoopHandler {
    pub per_job: Duration,
}

impl JobHandler for NoopHandler {
    fn handle<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Vec<Result<(), String>>> {
        Box::pin(async move {
            if !self.per_job.is_zero() {
                let n = u32::try_from(jobs.len()).unwrap_or(u32::MAX);
                tokio::time::sleep(self.per_job.saturating_mul(n)).await;
            }
            jobs.iter().map(|_| Ok(())).collect()
        })
    }
}

/// Wake-ups per queue, fed by LISTEN runner_jobs.
#[derive(Default)]
pub struct Wakeups {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    pub fn for_queue(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(queue.to_string()).or_default().clone()
    }
    pub fn wake(&self, queue: &str) {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(queue) {
            n.notify_one();
        }
    }
    pub fn wake_all(&self) {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for n in map.values() {
            n.notify_one();
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub queue: String,
    pub owner: String,
    pub batch: i64,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub poll: Duration,
    pub keep_done: Duration,
    /// After shutdown, how long the batch in hand may still run before its leases are released.
    pub grace: Duration,
}

impl ConsumerConfig {
    pub fn new(queue: impl Into<String>, owner: impl Into<String>) -> Self {
        ConsumerConfig {
            queue: queue.into(),
            owner: owner.into(),
            batch: 100,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            keep_done: Duration::from_secs(3600),
            grace: Duration::from_secs(20),
        }
    }
}

/// Run one consumer until `shutdown`: claim a batch, run it while a heartbeat renews the
/// lease, record outcomes in two statements. On shutdown the batch in hand is finished and the
/// loop stops claiming. Database errors are logged and retried after `poll`.
pub async fn run_consumer(
    pool: Pool,
    cfg: ConsumerConfig,
    handler: Arc<dyn JobHandler>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut last_reap = Instant::now() - cfg.poll;
    let mut last_prune = Instant::now();
    // Done ids of the last batch ride along with the next claim.
    let mut pending_done: Vec<i64> = Vec::new();
    while !shutdown.is_cancelled() {
        if last_reap.elapsed() >= cfg.poll {
            last_reap = Instant::now();
            if let Err(e) = maintenance(&pool, &cfg, &mut last_prune).await {
                crate::log::error("queue maintenance failed", &e);
            }
        }
        let jobs = match claim_batch(&pool, &cfg, &pending_done).await {
            Ok(jobs) => {
                pending_done.clear();
                jobs
            }
            Err(e) => {
                crate::log::error("claiming jobs failed", &e);
                idle(&cfg, &wake, &shutdown).await;
                continue;
            }
        };
        if jobs.is_empty() {
            idle(&cfg, &wake, &shutdown).await;
            continue;
        }
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let beat = CancellationToken::new();
        let hb = tokio::spawn(heartbeat_loop(
            pool.clone(),
            cfg.clone(),
            ids.clone(),
            beat.clone(),
        ));
        let started = Instant::now();
        // Finish the batch in hand; if shutdown's grace period runs out first, give the
        // leases back so another replica picks the jobs up at once.
        let results = tokio::select! {
            r = handler.handle(&jobs) => Some(r),
            _ = async { shutdown.cancelled().await; tokio::time::sleep(cfg.grace).await } => None,
        };
        beat.cancel();
        let _ = hb.await;
        let Some(results) = results else {
            let res = async { release(&**conn(&pool).await?, &cfg.owner, &ids).await }.await;
            match res {
                Ok(n) => crate::log::info(
                    "released leases on shutdown",
                    serde_json::json!({"queue": cfg.queue, "jobs": n}),
                ),
                Err(e) => crate::log::error("releasing leases failed", &e),
            }
            return;
        };
        let took = started.elapsed();
        let missing: Result<(), String> = Err("handler returned no result".to_string());
        let outcomes: Vec<Outcome> = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| Outcome::of(job, results.get(i).unwrap_or(&missing)))
            .collect();
        // The histogram before the counter: a scrape that sees a job counted sees its duration.
        metrics.observe_job_durations(&cfg.queue, &outcomes, took);
        metrics.observe_jobs(&cfg.queue, &results, took);
        let mut done = Vec::with_capacity(ids.len());
        let mut failed = Vec::new();
        for (job, res) in jobs
            .iter()
            .zip(results.into_iter().chain(std::iter::repeat(missing)))
        {
            match res {
                Ok(()) => done.push(job.id),
                Err(e) => failed.push((job.id, e)),
            }
        }
        pending_done = done;
        if let Err(e) = record(&pool, &cfg.owner, &[], &failed).await {
            // The leases will expire and the jobs will run again: at-least-once.
            crate::log::error("recording job outcomes failed", &e);
        }
    }
    if let Err(e) = record(&pool, &cfg.owner, &pending_done, &[]).await {
        crate::log::error("recording job outcomes failed", &e);
    }
}

async fn idle(cfg: &ConsumerConfig, wake: &Notify, shutdown: &CancellationToken) {
    tokio::select! {
        _ = wake.notified() => {}
        _ = tokio::time::sleep(cfg.poll) => {}
        _ = shutdown.cancelled() => {}
    }
}

async fn claim_batch(pool: &Pool, cfg: &ConsumerConfig, done: &[i64]) -> Result<Vec<Job>, DbError> {
    let c = conn(pool).await?;
    claim_completing(&**c, &cfg.queue, &cfg.owner, cfg.batch, cfg.lease, done).await
}

async fn record(
    pool: &Pool,
    owner: &str,
    done: &[i64],
    failed: &[(i64, String)],
) -> Result<(), DbError> {
    let c = conn(pool).await?;
    complete(&**c, owner, done).await?;
    fail(&**c, owner, failed).await?;
    Ok(())
}

async fn maintenance(
    pool: &Pool,
    cfg: &ConsumerConfig,
    last_prune: &mut Instant,
) -> Result<(), DbError> {
    let c = conn(pool).await?;
    reap_expired(&**c).await?;
    if last_prune.elapsed() >= Duration::from_secs(60) {
        *last_prune = Instant::now();
        prune_done(&**c, cfg.keep_done).await?;
    }
    Ok(())
}

async fn heartbeat_loop(pool: Pool, cfg: ConsumerConfig, ids: Vec<i64>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(cfg.heartbeat) => {}
        }
        let res = async {
            let c = conn(&pool).await?;
            heartbeat(&**c, &cfg.owner, &ids, cfg.lease).await
        }
        .await;
        if let Err(e) = res {
            crate::log::error("heartbeat failed", &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_job_is_dead_on_its_last_attempt_else_retried() {
        let job = |attempts, max_attempts| Job {
            id: 1,
            queue: "q".into(),
            payload: serde_json::Value::Null,
            attempts,
            max_attempts,
        };
        let err = Err("boom".to_string());
        assert_eq!(Outcome::of(&job(1, 5), &Ok(())), Outcome::Done);
        assert_eq!(Outcome::of(&job(5, 5), &Ok(())), Outcome::Done);
        assert_eq!(Outcome::of(&job(1, 5), &err), Outcome::Retry);
        assert_eq!(Outcome::of(&job(4, 5), &err), Outcome::Retry);
        assert_eq!(Outcome::of(&job(5, 5), &err), Outcome::Dead);
        assert_eq!(Outcome::of(&job(1, 1), &err), Outcome::Dead);
    }
}
