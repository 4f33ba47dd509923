//! `stack.toml` + `.env` -> one validated `Stack`.
//!
//! This is the only place that reads the stack's files. Every default is embedded here, so a
//! missing `stack.toml` still yields a complete configuration; an unknown key, a bad domain or an
//! impossible number is refused here, with the file and line, before any other work starts.
//!
//! `sections` is the file's shape and defaults, `parse` reads its text, `validate` checks what
//! the types cannot, and `stack` puts them together into a `Stack`.

mod parse;
mod sections;
mod stack;
mod validate;

pub use parse::parse_stack_file;
// Every section type, at `crate::config::*` as before the split.
pub use sections::*;
pub use stack::{ENV_FILE, STACK_FILE, Stack};
pub use validate::check_domain;
