//! stackctl runner: JavaScript workers triggered by HTTP, cron and a durable Postgres queue.
//!
//! Services take their listener and a shutdown token (see [`serve::run`]); the JavaScript
//! engine runs on its own threads ([`js`]), never on tokio's workers.

pub mod admin;
pub mod cron;
pub mod db;
pub mod fetch;
pub mod http;
pub mod js;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod queue;
pub mod registry;
pub mod secrets;
pub mod serve;
pub mod sql;
