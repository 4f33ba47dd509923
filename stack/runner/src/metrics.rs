//! Prometheus counters kept in memory; queue depth is read from the database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::queue_stats::QueueStats;

#[derive(Default)]
pub struct Metrics {
    /// worker -> status -> count (looked up by `&str`: no allocation per request)
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    request_seconds_sum: Mutex<f64>,
    request_count: AtomicU64,
    /// (queue, outcome) -> count
    jobs: Mutex<BTreeMap<(String, &'static str), u64>>,
    job_batch_seconds_sum: Mutex<f64>,
    cron_fired: AtomicU64,
}

impl Metrics {
    pub fn observe_request(&self, worker: &str, status: u16, took: Duration) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(worker) {
            Some(by_status) => *by_status.entry(status).or_default() += 1,
            None => {
                m.insert(worker.to_string(), BTreeMap::from([(status, 1)]));
            }
        }
        drop(m);
        *self
            .request_seconds_sum
            .lock()
            .unwrap_or_else(|p| p.into_inner()) += took.as_secs_f64();
        self.request_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_jobs(&self, queue: &str, results: &[Result<(), String>], took: Duration) {
        let mut m = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        for r in results {
            let outcome = if r.is_ok() { "done" } else { "failed" };
            *m.entry((queue.to_string(), outcome)).or_default() += 1;
        }
        *self
            .job_batch_seconds_sum
            .lock()
            .unwrap_or_else(|p| p.into_inner()) += took.as_secs_f64();
    }

    pub fn cron_fired(&self, n: u64) {
        self.cron_fired.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, depth: &[QueueStats]) -> String {
        let mut out = String::new();
        out.push_str("# HELP runner_http_requests_total HTTP requests by worker and status.\n");
        out.push_str("# TYPE runner_http_requests_total counter\n");
        for (w, by_status) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for (s, n) in by_status {
                let _ = writeln!(
                    out,
                    "runner_http_requests_total{{worker=\"{}\",status=\"{s}\"}} {n}",
                    esc(w)
                );
            }
        }
        out.push_str(
            "# HELP runner_http_request_duration_seconds Time spent answering requests.\n",
        );
        out.push_str("# TYPE runner_http_request_duration_seconds summary\n");
        let _ = writeln!(
            out,
            "runner_http_request_duration_seconds_sum {}",
            *self
                .request_seconds_sum
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        );
        let _ = writeln!(
            out,
            "runner_http_request_duration_seconds_count {}",
            self.request_count.load(Ordering::Relaxed)
        );
        out.push_str("# HELP runner_jobs_total Jobs run by queue and outcome.\n");
        out.push_str("# TYPE runner_jobs_total counter\n");
        for ((q, o), n) in self.jobs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "runner_jobs_total{{queue=\"{}\",outcome=\"{o}\"}} {n}",
                esc(q)
            );
        }
        out.push_str(
            "# HELP runner_job_batch_duration_seconds_sum Time spent running job batches.\n",
        );
        out.push_str("# TYPE runner_job_batch_duration_seconds_sum counter\n");
        let _ = writeln!(
            out,
            "runner_job_batch_duration_seconds_sum {}",
            *self
                .job_batch_seconds_sum
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        );
        out.push_str("# HELP runner_cron_ticks_fired_total Cron ticks fired by this replica.\n");
        out.push_str("# TYPE runner_cron_ticks_fired_total counter\n");
        let _ = writeln!(
            out,
            "runner_cron_ticks_fired_total {}",
            self.cron_fired.load(Ordering::Relaxed)
        );
        out.push_str("# HELP runner_queue_depth Jobs by queue and state.\n");
        out.push_str("# TYPE runner_queue_depth gauge\n");
        for s in depth {
            for (state, n) in [
                ("ready", s.ready),
                ("scheduled", s.scheduled),
                ("running", s.running),
                ("dead", s.dead),
            ] {
                let _ = writeln!(
                    out,
                    "runner_queue_depth{{queue=\"{}\",state=\"{state}\"}} {n}",
                    esc(&s.queue)
                );
            }
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
