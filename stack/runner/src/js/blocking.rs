//! Blocking calls from a worker's JavaScript (`fetch`, `env.DB`, `env.QUEUE`, a timer's sleep):
//! run without stalling the async runtime, and not counted as CPU time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs `f`, which blocks, without stalling the async runtime: on a tokio worker thread the runtime
/// first hands this thread's other tasks to another thread; elsewhere `f` just runs.
pub(super) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// Push the CPU deadline back by `d` (time spent blocked on I/O or sleeping for a timer is
/// not CPU time).
pub(super) fn extend(deadline: &Mutex<Option<Instant>>, d: Duration) {
    if let Ok(mut g) = deadline.lock()
        && let Some(t) = g.as_mut()
    {
        *t += d;
    }
}
