//! The Swarm scenario (issue 20), a test binary of its own: while the engine is a Swarm manager
//! (the scenario makes it one and leaves afterwards), containers of other tests running beside it
//! failed to resolve their services' names (`runner queue stats` in `workers::`: "failed to
//! lookup address"), and cargo runs test binaries one after another. It shares the integration
//! tests' helpers.

// Only some of the shared helpers are used here.
#[allow(unused_imports)]
#[path = "../integration/support/mod.rs"]
mod support;

mod scenario;
