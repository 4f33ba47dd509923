//! `queue stats`: jobs per queue and state, which workers consume each queue, and which queues
//! hold waiting jobs that no worker consumes (they would wait forever).

use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::db::DbError;
use crate::sql::{CRON_QUEUE, WORKFLOW_QUEUE};

/// Counts per queue and state, and the queue's consumers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: String,
    pub ready: i64,
    pub scheduled: i64,
    pub running: i64,
    pub done: i64,
    pub dead: i64,
    /// Deployed workers that consume this queue (`--queue`), by name.
    pub consumers: Vec<String>,
    /// Jobs are ready or scheduled but no worker consumes the queue (the runner's own `cron`
    /// queue always has a consumer).
    pub no_consumer: bool,
}

/// One row per queue.
pub async fn stats(client: &impl GenericClient) -> Result<Vec<QueueStats>, DbError> {
    let rows = client
        .query(
            "SELECT j.queue,
                    count(*) FILTER (WHERE j.state = 'ready' AND j.run_at <= now()),
                    count(*) FILTER (WHERE j.state = 'ready' AND j.run_at > now()),
                    count(*) FILTER (WHERE j.state = 'running'),
                    count(*) FILTER (WHERE j.state = 'done'),
                    count(*) FILTER (WHERE j.state = 'dead'),
                    ARRAY(SELECT w.name FROM runner.workers w
                           WHERE w.active_version IS NOT NULL AND j.queue = ANY (w.queues)
                           ORDER BY w.name)
               FROM runner.jobs j GROUP BY j.queue ORDER BY j.queue",
            &[],
        )
        .await
        .map_err(|e| DbError::new("reading queue stats", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut s = QueueStats {
                queue: r.get(0),
                ready: r.get(1),
                scheduled: r.get(2),
                running: r.get(3),
                done: r.get(4),
                dead: r.get(5),
                consumers: r.get(6),
                no_consumer: false,
            };
            s.no_consumer = s.queue != CRON_QUEUE
                && s.queue != WORKFLOW_QUEUE
                && s.consumers.is_empty()
                && s.ready + s.scheduled > 0;
            s
        })
        .collect())
}

/// The table the CLI prints, and a note naming the queues nobody consumes.
pub fn render_stats(stats: &[QueueStats]) -> String {
    let row = |q: &str, counts: [&dyn std::fmt::Display; 5], consumers: &str| {
        format!(
            "{q:<24} {:>9} {:>9} {:>9} {:>9} {:>9}  {consumers}\n",
            counts[0], counts[1], counts[2], counts[3], counts[4]
        )
    };
    let mut out = row(
        "QUEUE",
        [&"READY", &"SCHEDULED", &"RUNNING", &"DONE", &"DEAD"],
        "CONSUMERS",
    );
    for s in stats {
        let consumers = if s.no_consumer {
            "NO CONSUMER".to_string()
        } else if s.queue == CRON_QUEUE {
            "(cron triggers)".to_string()
        } else if s.queue == WORKFLOW_QUEUE {
            "(workflow runs)".to_string()
        } else if s.consumers.is_empty() {
            "-".to_string()
        } else {
            s.consumers.join(", ")
        };
        out.push_str(&row(
            &s.queue,
            [&s.ready, &s.scheduled, &s.running, &s.done, &s.dead],
            &consumers,
        ));
    }
    let orphans: Vec<&str> = stats
        .iter()
        .filter(|s| s.no_consumer)
        .map(|s| s.queue.as_str())
        .collect();
    if !orphans.is_empty() {
        out.push_str(&format!(
            "\nnote: no worker consumes {}: those jobs wait until one does. Deploy a worker with \
             `--queue NAME`, or send to a consumed queue (`env.QUEUE.send(body, {{ queue: 'NAME' }})`).\n",
            orphans.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_marks_queues_without_a_consumer_and_names_them_in_a_note() {
        let q = |name: &str, ready: i64, consumers: &[&str], no_consumer: bool| QueueStats {
            queue: name.into(),
            ready,
            consumers: consumers.iter().map(|s| s.to_string()).collect(),
            no_consumer,
            ..Default::default()
        };
        let out = render_stats(&[
            q("cron", 0, &[], false),
            q("workflows", 2, &[], false),
            q("done-only", 0, &[], false),
            q("lonely", 3, &[], true),
            q("notesq", 1, &["api", "b"], false),
        ]);
        let line = |name: &str| {
            out.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name}: {out}"))
        };
        assert!(line("QUEUE").ends_with("CONSUMERS"), "{out}");
        assert!(line("lonely").ends_with("NO CONSUMER"), "{out}");
        assert!(line("notesq").ends_with("api, b"), "{out}");
        assert!(line("done-only").ends_with(" -"), "{out}");
        assert!(line("cron").ends_with("(cron triggers)"), "{out}");
        assert!(line("workflows").ends_with("(workflow runs)"), "{out}");
        assert!(out.contains("note: no worker consumes lonely:"), "{out}");
        assert!(!render_stats(&[q("notesq", 1, &["api"], false)]).contains("note:"));
    }
}
