//! Types both sides of a boundary share, so that the two sides cannot drift apart.
//!
//! stackctl talks to the services it ships through their command lines, run inside their
//! containers: `runner worker deploy` reads a [`manifest::Manifest`] on stdin and answers with
//! [`manifest::Deployed`], and ends with an [`exit::AdminExit`] code when the user is to fix
//! something; `postgate tenant|token ...` parses the [`admin`] requests that stackctl's own
//! `tenant`, `token` and `gen-token` commands embed. Each type is written once, here, and both
//! sides use it.

pub mod admin;
pub mod exit;
pub mod manifest;
pub mod secret_env;
