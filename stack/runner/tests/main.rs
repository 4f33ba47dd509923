//! Integration tests of the runner against a real PostgreSQL 17 (Docker image
//! `stackctl/postgres:17`) and real `runner` processes.

mod admin;
mod cron;
mod job_metrics;
mod queue;
mod queue_default;
mod support;
mod workers;
mod workflows;
