//! Errors meant for the person at the terminal: what went wrong, plus the next command to run.
//!
//! Feature modules return `anyhow::Error`; when they know how to fix a problem they put a
//! `UserError` in the chain, and `main` prints its hint once, after the error chain.

use std::fmt;

/// An error with an optional hint line (what to do next).
#[derive(Debug)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// The first hint found anywhere in an error chain.
pub fn hint_of(err: &anyhow::Error) -> Option<&str> {
    // `downcast_ref` on the anyhow error also finds a `UserError` attached with `.context(..)`,
    // which the plain `chain()` walk does not see (it yields anyhow's private wrapper there).
    err.downcast_ref::<UserError>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<UserError>()))
        .and_then(|u| u.hint.as_deref())
}
