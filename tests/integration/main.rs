//! The one integration test binary: scenarios against the real `stackctl` binary, real files,
//! the real Docker Engine and real PostgreSQL. Each module is one area; `support` holds the
//! fluent helper, `alloy` the parser `configs` reads Alloy's config with. The Swarm scenario is
//! a binary of its own (`tests/swarm`).

mod alloy;
mod support;

mod backup;
mod bad_input;
mod cli_docs;
mod configs;
mod engine;
mod import_supabase;
mod init;
mod metrics;
mod migrate;
mod newcomer;
mod postgate;
mod publish;
mod readme;
mod render;
mod workers;
