//! `runner worker deploy|list|rm`: the admin side of workers, run by `stackctl worker ...`
//! inside a running runner container (so it needs no database port on the host and uses the
//! container's own `RUNNER_DATABASE_URL`, `POSTGATE_TOKEN_PEPPER` and `RUNNER_SECRETS_KEY`).
//!
//! A deploy is one JSON [`Manifest`] read from stdin (the source and secret values never appear
//! in argv or the environment). With `db`, the worker gets a postgate tenant (made if missing)
//! and a token of its own, kept as a sealed secret; a token is reused while its tenant and
//! permissions are unchanged, and revoked when they change or the worker is removed (or when
//! the deploy that made it fails). A manifest identical to what is deployed (same source,
//! settings, limits, binding and secret values) changes nothing and keeps its version.
//!
//! The manifest and the deploy's answer are `protocol::manifest`'s types, which stackctl builds
//! and reads; the exit codes of a refusal are `protocol::exit`'s.

mod deploy;
mod list;
mod remove;
mod tokens;
mod validate;

pub use deploy::deploy;
pub use list::{WorkerRow, list, render_list};
pub use protocol::manifest::{DbBinding, Deployed, Limits, Manifest};
pub use remove::remove;
pub use validate::validate;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error(transparent)]
    Postgate(#[from] postgate::admin::AdminError),
}

/// Maps a failed statement to [`AdminError::Db`], naming what was attempted.
fn db(what: &str) -> impl FnOnce(tokio_postgres::Error) -> AdminError + '_ {
    move |e| AdminError::Db(DbError::new(what, e))
}
