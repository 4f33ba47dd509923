//! Requests per second per token: a token bucket (a burst of twice the rate) per token, kept in
//! this replica's memory, so each replica limits on its own.

use crate::error::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The buckets, by token id.
#[derive(Default)]
pub(super) struct RateLimiter {
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one request of token `id` at `rate` per second (0: unlimited), or `rate_limited`.
    pub(super) fn take(&self, id: i64, rate: u32) -> Result<(), ApiError> {
        if rate == 0 {
            return Ok(());
        }
        let (rate, burst) = (rate as f64, 2.0 * rate as f64);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, t)| now.duration_since(*t).as_secs() < 60);
        }
        let (tokens, last) = buckets.entry(id).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens < 1.0 {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("more than {rate} requests per second with this token; slow down"),
            ));
        }
        *tokens -= 1.0;
        Ok(())
    }
}
