//! stackctl runner: JavaScript workers triggered by HTTP, cron and a durable Postgres queue.
//!
//! Services take their listener and a shutdown token (see [`serve::run`]). An HTTP request runs
//! its worker's JavaScript on the tokio thread that took it (blocking calls under
//! `block_in_place`); cron and queue invocations run on each worker's own thread ([`js`]).

pub mod admin;
pub mod body;
pub mod cron;
pub mod db;
pub mod fetch;
pub mod http;
pub mod js;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod queue;
pub mod queue_stats;
pub mod registry;
pub mod reseal;
pub mod secrets;
pub mod serve;
pub mod sql;
pub mod workflow;
