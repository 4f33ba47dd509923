//! The command layer: each file maps one command's clap arguments to what it does. Commands that
//! need no stack (shell completions, the man page) live here from the start; the others move here
//! from `engine`, `tenants` and `workers` with issue 14.

pub mod completions;
pub mod man;
