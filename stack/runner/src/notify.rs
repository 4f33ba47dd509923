//! One LISTEN connection per process: `runner_jobs` wakes queue consumers, `runner_workers`
//! tells the worker registry to reload. Reconnects with a pause; after a reconnect every
//! consumer is woken (a notification may have been missed), and polling covers the gap.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::queue::Wakeups;

/// Where notifications go.
pub struct Bus {
    pub jobs: Arc<Wakeups>,
    /// Worker names whose definition changed ("*" after a reconnect: reload everything).
    pub workers: broadcast::Sender<String>,
}

impl Bus {
    pub fn new() -> Arc<Self> {
        Arc::new(Bus {
            jobs: Arc::new(Wakeups::default()),
            workers: broadcast::channel(256).0,
        })
    }
}

/// Listen until `shutdown`.
pub async fn listen(url: String, bus: Arc<Bus>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(e) = listen_once(&url, &bus, &shutdown).await {
            crate::log::error("LISTEN connection lost", &e);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn listen_once(url: &str, bus: &Bus, shutdown: &CancellationToken) -> Result<(), DbError> {
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| DbError::new("parsing the database URL", e))?;
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| DbError::new("connecting for LISTEN", e))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx
                        .send((n.channel().to_string(), n.payload().to_string()))
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(DbError::new("reading notifications", e)),
            }
        }
        Ok(())
    });
    client
        .batch_execute("LISTEN runner_jobs; LISTEN runner_workers;")
        .await
        .map_err(|e| DbError::new("subscribing with LISTEN", e))?;
    // Anything may have changed while we were not listening.
    bus.jobs.wake_all();
    let _ = bus.workers.send("*".to_string());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                driver.abort();
                return Ok(());
            }
            msg = rx.recv() => match msg {
                Some((channel, payload)) => match channel.as_str() {
                    "runner_jobs" => bus.jobs.wake(&payload),
                    "runner_workers" => { let _ = bus.workers.send(payload); }
                    _ => {}
                },
                None => {
                    return match driver.await {
                        Ok(r) => r,
                        Err(e) => Err(DbError::new("notification task", e)),
                    };
                }
            }
        }
    }
}
