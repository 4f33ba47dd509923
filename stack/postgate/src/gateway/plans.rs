//! Statements gone stale after a schema change: which errors mean it, and the plan generation a
//! statement's text carries so that PgBouncer's server-side copy is not found again.

use super::Gateway;
use crate::error::ApiError;
use std::borrow::Cow;

impl Gateway {
    /// The text a statement is prepared under. PgBouncer keeps prepared statements per server
    /// session by their text, past a client's Close, so after a schema change made one unusable
    /// ("cached plan must not change result type") the same text would find it again: such a
    /// statement is prepared from then on with a comment naming a new plan generation. Returns
    /// the text of `sql` at `generation` (by default the current one), and that generation.
    pub(super) fn prepared_text<'a>(
        &self,
        sql: &'a str,
        generation: Option<u32>,
    ) -> (Cow<'a, str>, u32) {
        let generation = generation.unwrap_or_else(|| {
            let generations = self
                .plan_generations
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            generations.peek(sql).copied().unwrap_or(0)
        });
        match generation {
            0 => (Cow::Borrowed(sql), 0),
            g => (Cow::Owned(format!("{sql}\n-- postgate plan {g}")), g),
        }
    }

    /// The statement failed as stale at generation `failed`: on to the next one, unless a request
    /// that failed at the same time moved it on already.
    pub(super) fn replan(&self, sql: &str, failed: u32) {
        let mut generations = self
            .plan_generations
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if generations.peek(sql).copied().unwrap_or(0) <= failed {
            generations.put(sql.to_string(), failed + 1);
        }
    }
}

/// Errors that only a prepared statement gone stale causes: its result type changed (`0A000`,
/// "cached plan must not change result type"), or it is gone from the server session (`26000`).
pub(super) fn certainly_stale(e: &ApiError) -> bool {
    matches!(e.sqlstate.as_deref(), Some("0A000" | "26000"))
        && (e.sqlstate.as_deref() == Some("26000") || e.message.contains("cached plan"))
}

/// Errors that a schema change under a prepared statement causes: its result type changed
/// (`0A000`), it is gone from the server session (`26000`), or its parameter types no longer fit
/// (`42...`, `22P02`). A permission error is the answer, not staleness.
pub(super) fn may_be_stale(e: &ApiError) -> bool {
    matches!(e.sqlstate.as_deref(), Some(s)
        if s == "0A000" || s == "26000" || s == "22P02" || (s.starts_with("42") && s != "42501"))
}
