//! Settings of the service, validated once. Defaults are the documented ones.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most rows one statement may return; more rolls the transaction back.
    pub max_rows: usize,
    /// Largest JSON response (summed over rows); more rolls the transaction back.
    pub max_response_bytes: usize,
    /// `SET LOCAL statement_timeout`.
    pub statement_timeout: Duration,
    /// Most statements in one /batch.
    pub max_batch: usize,
    /// Requests per second per token (token bucket, burst of twice this); 0 = unlimited.
    pub rate_per_token: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_rows: 10_000,
            max_response_bytes: 10 << 20,
            statement_timeout: Duration::from_secs(10),
            max_batch: 100,
            rate_per_token: 100,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// The service login's URL; tenant logins reuse its host, port and database.
    pub database_url: String,
    /// Key of the token HMAC and of the tenant logins' passwords.
    pub pepper: Vec<u8>,
    pub limits: Limits,
    /// The pg_query check (second wall). Off only to prove the database alone holds.
    pub parser_check: bool,
    /// Connections per pool (the service pool and each tenant login's pool).
    pub pool_size: usize,
}

/// The pepper must be long enough to be a key.
pub fn check_pepper(pepper: &str) -> Result<Vec<u8>, &'static str> {
    if pepper.len() < 16 {
        return Err("POSTGATE_TOKEN_PEPPER must be at least 16 characters");
    }
    Ok(pepper.as_bytes().to_vec())
}
