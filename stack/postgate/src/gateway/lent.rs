//! A pooled connection lent to one request, closed rather than pooled again when the request
//! ends without handing it back (its transaction may still be open).

use deadpool_postgres::Object;

/// Drops a connection whose state we cannot vouch for, instead of returning it to the pool.
pub(super) fn discard(client: Object) {
    drop(Object::take(client));
}

/// A pooled connection lent to one request. Handed back with [`Lent::release`] once the request
/// has ended its transaction. Dropped without that (the request's future was dropped mid-way,
/// as when its HTTP client goes away), the connection is closed instead of going back to the
/// pool: its transaction may still be open, holding the abandoned request's work.
pub(super) struct Lent(pub(super) Option<Object>);

impl Lent {
    pub(super) fn release(mut self) -> Object {
        self.0.take().expect("a lent connection is released once")
    }
}

impl std::ops::Deref for Lent {
    type Target = Object;
    fn deref(&self) -> &Object {
        self.0
            .as_ref()
            .expect("a lent connection is used before its release")
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            discard(client);
        }
    }
}
