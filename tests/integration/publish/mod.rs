//! `stackctl publish` against a real registry: Debian's `docker-registry` (distribution 2.8),
//! started by each test on a free loopback port (plain http, which the Docker Engine allows for
//! 127.0.0.0/8) with its storage in a temp dir, and killed when the test ends.
//!
//! Images published here carry tags unique to the test (`stackctl-pubtest-<pid>-<test>/...`), so
//! removing them never touches the shared `stackctl/...` tags other tests run in parallel use;
//! a guard removes them (and the registry references) when the test ends, even on failure.
//!
//! `registry` starts the registry, `fixtures` holds the projects, image guards and runs the
//! scenarios share; one file per scenario.

mod bad_input;
mod credentials;
mod fixtures;
mod force;
mod registry;
mod round_trip;
