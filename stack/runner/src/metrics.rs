//! Prometheus counters and histograms kept in memory; queue depth and workflow instances by
//! status are read from the database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::queue::Outcome;
use crate::queue_stats::QueueStats;

/// Upper bounds (seconds) of `runner_job_duration_seconds`'s buckets: 5 ms to 5 minutes.
pub const JOB_SECONDS_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// One series of a histogram: per-bucket counts (not cumulative; the last is `+Inf`), sum, count.
#[derive(Debug, Clone, PartialEq)]
struct Histogram {
    buckets: [u64; JOB_SECONDS_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty series.
    fn new() -> Histogram {
        Histogram {
            buckets: [0; JOB_SECONDS_BUCKETS.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Adds `n` observations of `v`.
    fn observe(&mut self, v: f64, n: u64) {
        let i = JOB_SECONDS_BUCKETS
            .iter()
            .position(|le| v <= *le)
            .unwrap_or(JOB_SECONDS_BUCKETS.len());
        self.buckets[i] += n;
        self.sum += v * n as f64;
        self.count += n;
    }

    /// Appends the series' `_bucket` (cumulative), `_sum` and `_count` lines; `labels` are the
    /// series' own, already escaped and comma-separated.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            cumulative += n;
            let le = JOB_SECONDS_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), f64::to_string);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
pub struct Metrics {
    /// worker -> status -> count (looked up by `&str`: no allocation per request)
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    request_seconds_sum: Mutex<f64>,
    request_count: AtomicU64,
    /// (queue, outcome) -> count
    jobs: Mutex<BTreeMap<(String, &'static str), u64>>,
    job_batch_seconds_sum: Mutex<f64>,
    /// (queue, outcome) -> job durations
    job_seconds: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    cron_fired: AtomicU64,
    /// (workflow, outcome) -> durations of `step.do` attempts
    step_seconds: Mutex<BTreeMap<(String, &'static str), Histogram>>,
}

/// Workflow instances of one workflow in one status (read at scrape time).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceCount {
    pub workflow: String,
    pub status: String,
    pub count: i64,
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

    /// One observation of `took` per finished job of a batch, under its outcome. The jobs of a
    /// batch run in one handler call, so each one's duration is the batch's.
    pub fn observe_job_durations(&self, queue: &str, outcomes: &[Outcome], took: Duration) {
        let mut m = self.job_seconds.lock().unwrap_or_else(|p| p.into_inner());
        for o in [Outcome::Done, Outcome::Retry, Outcome::Dead] {
            let n = outcomes.iter().filter(|x| **x == o).count() as u64;
            if n == 0 {
                continue;
            }
            m.entry((queue.to_string(), o.label()))
                .or_insert_with(Histogram::new)
                .observe(took.as_secs_f64(), n);
        }
    }

    /// One ended attempt of a workflow's `step.do`: `outcome` is `complete`, `retry` (it failed
    /// and will be retried) or `errored` (it failed for good).
    pub fn observe_step(&self, workflow: &str, outcome: &'static str, took: Duration) {
        self.step_seconds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((workflow.to_string(), outcome))
            .or_insert_with(Histogram::new)
            .observe(took.as_secs_f64(), 1);
    }

    pub fn cron_fired(&self, n: u64) {
        self.cron_fired.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, depth: &[QueueStats], instances: &[InstanceCount]) -> String {
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
        out.push_str(
            "# HELP runner_job_duration_seconds Time to run each finished job (its batch's), by queue and outcome (done, retry, dead).\n",
        );
        out.push_str("# TYPE runner_job_duration_seconds histogram\n");
        for ((q, o), h) in self
            .job_seconds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            h.render(
                &mut out,
                "runner_job_duration_seconds",
                &format!("queue=\"{}\",outcome=\"{o}\"", esc(q)),
            );
        }
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
        out.push_str(
            "# HELP runner_workflow_step_duration_seconds Time each step.do attempt took, by workflow and outcome (complete, retry, errored).\n",
        );
        out.push_str("# TYPE runner_workflow_step_duration_seconds histogram\n");
        for ((w, o), h) in self
            .step_seconds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            h.render(
                &mut out,
                "runner_workflow_step_duration_seconds",
                &format!("workflow=\"{}\",outcome=\"{o}\"", esc(w)),
            );
        }
        out.push_str(
            "# HELP runner_workflow_instances Workflow instances by workflow and status.\n",
        );
        out.push_str("# TYPE runner_workflow_instances gauge\n");
        for i in instances {
            let _ = writeln!(
                out,
                "runner_workflow_instances{{workflow=\"{}\",status=\"{}\"}} {}",
                esc(&i.workflow),
                esc(&i.status),
                i.count
            );
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of one `runner_job_duration_seconds` series, `labels` as in the exposition.
    fn series(text: &str, labels: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("runner_job_duration_seconds") && l.contains(labels))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn workflow_steps_and_instances_render_by_workflow() {
        let m = Metrics::default();
        m.observe_step("Flow", "complete", Duration::from_millis(20));
        m.observe_step("Flow", "retry", Duration::from_millis(700));
        m.observe_step("Flow", "retry", Duration::from_millis(300));
        let counts = [InstanceCount {
            workflow: "Flow".into(),
            status: "waiting".into(),
            count: 7,
        }];
        let text = m.render(&[], &counts);
        for line in [
            r#"runner_workflow_step_duration_seconds_bucket{workflow="Flow",outcome="complete",le="0.025"} 1"#,
            r#"runner_workflow_step_duration_seconds_bucket{workflow="Flow",outcome="retry",le="0.5"} 1"#,
            r#"runner_workflow_step_duration_seconds_bucket{workflow="Flow",outcome="retry",le="1"} 2"#,
            r#"runner_workflow_step_duration_seconds_sum{workflow="Flow",outcome="retry"} 1"#,
            r#"runner_workflow_step_duration_seconds_count{workflow="Flow",outcome="retry"} 2"#,
            r#"runner_workflow_instances{workflow="Flow",status="waiting"} 7"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert!(text.contains("# TYPE runner_workflow_instances gauge\n"));
    }

    #[test]
    fn job_durations_render_as_a_cumulative_histogram_by_queue_and_outcome() {
        let m = Metrics::default();
        let text = m.render(&[], &[]);
        assert!(
            text.contains("# TYPE runner_job_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(series(&text, "queue=").is_empty(), "no series before a job");

        use Outcome::{Dead, Done, Retry};
        m.observe_job_durations("mail", &[Done, Done, Retry], Duration::from_millis(30));
        m.observe_job_durations("mail", &[Dead], Duration::from_secs(400));
        m.observe_job_durations("q\"x", &[Done], Duration::from_millis(5));
        let text = m.render(&[], &[]);

        let done = series(&text, r#"queue="mail",outcome="done""#);
        assert_eq!(done.len(), JOB_SECONDS_BUCKETS.len() + 3, "{text}");
        for line in [
            r#"runner_job_duration_seconds_bucket{queue="mail",outcome="done",le="0.025"} 0"#,
            r#"runner_job_duration_seconds_bucket{queue="mail",outcome="done",le="0.05"} 2"#,
            r#"runner_job_duration_seconds_bucket{queue="mail",outcome="done",le="300"} 2"#,
            r#"runner_job_duration_seconds_bucket{queue="mail",outcome="done",le="+Inf"} 2"#,
            r#"runner_job_duration_seconds_sum{queue="mail",outcome="done"} 0.06"#,
            r#"runner_job_duration_seconds_count{queue="mail",outcome="done"} 2"#,
            r#"runner_job_duration_seconds_bucket{queue="mail",outcome="retry",le="0.05"} 1"#,
            r#"runner_job_duration_seconds_count{queue="mail",outcome="retry"} 1"#,
            r#"runner_job_duration_seconds_bucket{queue="mail",outcome="dead",le="300"} 0"#,
            r#"runner_job_duration_seconds_bucket{queue="mail",outcome="dead",le="+Inf"} 1"#,
            r#"runner_job_duration_seconds_sum{queue="mail",outcome="dead"} 400"#,
            // A bound is inclusive (`le`), and label values are escaped.
            r#"runner_job_duration_seconds_bucket{queue="q\"x",outcome="done",le="0.005"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }
}
