//! Each request thread's own engines, one per worker handle (created on first use, as Workers
//! have one per isolate), and the bookkeeping that lets a thread drop the engines of handles that
//! are gone (a redeploy or `worker rm`).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::engine::Engine;

/// Ids of the worker handles alive; a thread drops its engines of the others.
static LIVE_HANDLES: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
/// Bumped whenever a handle goes away, so that threads know when to look.
static RETIRED: AtomicU64 = AtomicU64::new(0);
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// This thread's engines, by worker handle id.
#[derive(Default)]
struct LocalEngines {
    seen: u64,
    engines: HashMap<u64, Engine>,
}

impl LocalEngines {
    /// Takes the engine of `id` out (the caller puts it back), after dropping those of handles
    /// that are gone (a redeploy or `worker rm`).
    fn take(&mut self, id: u64) -> Option<Engine> {
        let retired = RETIRED.load(Ordering::SeqCst);
        if retired != self.seen {
            let live = LIVE_HANDLES.lock().unwrap_or_else(|p| p.into_inner());
            self.engines.retain(|k, _| live.contains(k));
            self.seen = retired;
        }
        self.engines.remove(&id)
    }
}

thread_local! {
    static LOCAL_ENGINES: RefCell<LocalEngines> = RefCell::new(LocalEngines::default());
}

/// A new worker handle's id, counted as alive.
pub(super) fn register() -> u64 {
    let id = NEXT_HANDLE.fetch_add(1, Ordering::SeqCst);
    LIVE_HANDLES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id);
    id
}

/// Handle `id` is gone: each thread drops its engine the next time it takes one.
pub(super) fn retire(id: u64) {
    LIVE_HANDLES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    RETIRED.fetch_add(1, Ordering::SeqCst);
}

/// This thread's engine of handle `id`, taken out; [`put`] gives it back.
pub(super) fn take(id: u64) -> Option<Engine> {
    LOCAL_ENGINES.with(|l| l.borrow_mut().take(id))
}

/// Keep `engine` as this thread's engine of handle `id`.
pub(super) fn put(id: u64, engine: Engine) {
    LOCAL_ENGINES.with(|l| l.borrow_mut().engines.insert(id, engine));
}
