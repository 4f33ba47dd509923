//! postgate: SQL over HTTP with scoped tokens. Isolation is enforced by PostgreSQL (per-tenant
//! schemas, NOLOGIN roles and one login per permission set); the pg_query check is a second wall.
//!
//! The runner links this library: build a [`gateway::Gateway`] and call
//! [`gateway::Gateway::query`] with the worker's own token.

pub mod admin;
pub mod check;
pub mod checker;
pub mod config;
pub mod db;
pub mod error;
pub mod gateway;
pub mod http;
pub mod pipeline;
pub mod schema;
pub mod token;
pub mod types;
pub mod wait;

pub use config::{Limits, Settings};
pub use error::ApiError;
pub use gateway::{Gateway, QueryResult, RowsAs, Statement};
