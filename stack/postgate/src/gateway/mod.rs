//! Runs a client's statements for a token: the one code path behind `POST /query`, `POST /batch`
//! and the library API the runner links for `env.DB`.
//!
//! Rooms: `read` (a read-only token's single statement in one sync point), `tx` (the general
//! path: one transaction, BEGIN to COMMIT, with the role checks), `plans` (statements gone stale
//! after a schema change), `rows` (the shape of rows and the response limits), `rate` (requests
//! per second per token) and `lent` (a pooled connection lent to one request).

mod lent;
mod plans;
mod rate;
mod read;
mod rows;
mod tx;

use crate::check::CheckError;
use crate::checker::Checker;
use crate::config::Settings;
use crate::db::{Db, DbError, TokenInfo};
use crate::error::ApiError;
use crate::token;
use axum::http::StatusCode;
use lent::{Lent, discard};
use lru::LruCache;
use rate::RateLimiter;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use tx::{Failure, end_transaction};

/// One statement and its parameters (`$1`, `$2`, ...), each a JSON value.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<Value>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RowsAs {
    #[default]
    Arrays,
    Objects,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Value>,
    /// Rows returned, or rows affected for a statement without RETURNING.
    pub row_count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("starting the statement checker threads: {0}")]
    Checker(std::io::Error),
}

impl QueryResult {
    /// `row_count`: the rows returned, or for a statement without columns the rows it affected.
    fn new(columns: Vec<Column>, rows: Vec<Value>, affected: Option<u64>) -> QueryResult {
        let row_count = if columns.is_empty() {
            affected.unwrap_or(0)
        } else {
            rows.len() as u64
        };
        QueryResult {
            columns,
            rows,
            row_count,
        }
    }
}

pub struct Gateway {
    db: Db,
    settings: Settings,
    checker: Checker,
    /// Statements re-prepared after a schema change, with their plan generation.
    plan_generations: Mutex<LruCache<String, u32>>,
    rate: RateLimiter,
}

impl Gateway {
    pub fn new(settings: Settings) -> Result<Gateway, GatewayError> {
        let db = Db::new(
            &settings.database_url,
            settings.pepper.clone(),
            settings.pool_size,
        )?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        Ok(Gateway {
            db,
            settings,
            checker: Checker::new(threads).map_err(GatewayError::Checker)?,
            plan_generations: Mutex::new(LruCache::new(NonZeroUsize::new(1024).expect("non-zero"))),
            rate: RateLimiter::default(),
        })
    }

    /// LISTEN for token revocations over this URL (the service login, straight to PostgreSQL)
    /// rather than `database_url`, which may go through a transaction-mode pooler that cannot
    /// hold a LISTEN session. Without it, LISTEN uses `database_url`.
    pub fn with_listen_url(mut self, url: &str) -> Result<Gateway, DbError> {
        self.db.set_listen_url(url)?;
        Ok(self)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Background work (token-change LISTEN, `last_used_at` batches) to spawn beside `serve`.
    pub fn background(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.db.background(shutdown)
    }

    pub async fn ready(&self) -> bool {
        self.db.ready().await
    }

    /// The grant of a bearer token, or `unauthorized`.
    pub async fn authenticate(&self, bearer: &str) -> Result<TokenInfo, ApiError> {
        if !bearer.starts_with(token::PREFIX) || bearer.len() > 256 {
            return Err(ApiError::unauthorized());
        }
        let hash = token::hash(self.db.pepper(), bearer);
        match self.db.lookup(&hash).await {
            Ok(Some(info)) => {
                self.rate
                    .take(info.id, self.settings.limits.rate_per_token)?;
                Ok(info)
            }
            Ok(None) => Err(ApiError::unauthorized()),
            Err(e) => Err(ApiError::internal("authenticating", &e)),
        }
    }

    /// One statement with a bearer token: the library entry point for `env.DB`.
    pub async fn query(
        &self,
        bearer: &str,
        statement: Statement,
        rows_as: RowsAs,
    ) -> Result<QueryResult, ApiError> {
        let info = self.authenticate(bearer).await?;
        let mut out = self.run(&info, &[statement], rows_as).await?;
        Ok(out.remove(0))
    }

    /// Runs `statements` in one transaction as the token's role; all or nothing.
    ///
    /// A read-only token's single statement goes in one round trip with one sync point
    /// (`crate::pipeline`) when its types are built in. Otherwise: the transaction set-up and the
    /// first statement go out together, and so does the role check with COMMIT for a read-only
    /// token; a token that may write takes a second round trip for the COMMIT, sent only once
    /// every row has passed the limits, so that a limit rolls the writes back. A statement not
    /// yet prepared on the connection adds one.
    pub async fn run(
        &self,
        info: &TokenInfo,
        statements: &[Statement],
        rows_as: RowsAs,
    ) -> Result<Vec<QueryResult>, ApiError> {
        let limits = &self.settings.limits;
        if statements.is_empty() {
            return Err(ApiError::bad_request("no statement given"));
        }
        if statements.len() > limits.max_batch {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_statements",
                format!("at most {} statements per batch", limits.max_batch),
            ));
        }
        if self.settings.parser_check {
            let sqls: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
            self.checker
                .check(&sqls, info.permissions, info.schema())
                .await
                .map_err(|(i, e)| check_error(e).at(i))?;
        }
        if info.permissions.read_only()
            && statements.len() == 1
            && let Some(done) = self.read_in_one_sync(info, &statements[0], rows_as).await
        {
            return done.map(|r| vec![r]);
        }
        let client = Lent(Some(
            self.db
                .tenant_client(info)
                .await
                .map_err(|e| ApiError::internal("connecting", &e))?,
        ));
        let first = self.run_tx(&client, info, statements, rows_as).await;
        let out = match first {
            // A statement prepared on this connection before a schema change may no longer fit
            // (a column's type changed, a table was recreated): prepare it afresh, once.
            Err(Failure::Stale(i, generation, err)) => {
                let (stale, _) = self.prepared_text(&statements[i].sql, Some(generation));
                client.statement_cache.remove(&stale, &[]);
                self.replan(&statements[i].sql, generation);
                if end_transaction(&client).await.is_err() {
                    discard(client.release());
                    return Err(err);
                }
                self.run_tx(&client, info, statements, rows_as).await
            }
            other => other,
        };
        let out = out.map_err(|f| match f {
            Failure::Stale(_, _, e) | Failure::Failed(e) => e,
        });
        match &out {
            Ok(_) => {}
            Err(_) => {
                if end_transaction(&client).await.is_err() {
                    discard(client.release());
                    return out;
                }
            }
        }
        // Statements stay prepared on the connection (PgBouncer's `max_prepared_statements` keeps
        // them across server sessions); an application's set is small, ad-hoc SQL is not.
        if client.statement_cache.size() > PREPARED_PER_CONNECTION {
            client.statement_cache.clear();
        }
        drop(client.release());
        out
    }
}

/// How many statements a pooled connection keeps prepared before it forgets them all.
const PREPARED_PER_CONNECTION: usize = 256;

fn check_error(e: CheckError) -> ApiError {
    match e {
        CheckError::Syntax(m) => ApiError::new(StatusCode::BAD_REQUEST, "syntax_error", m),
        CheckError::Empty => ApiError::bad_request("empty statement"),
        CheckError::Multiple => ApiError::new(
            StatusCode::BAD_REQUEST,
            "multiple_statements",
            e.to_string(),
        ),
        CheckError::Denied(m) => ApiError::new(StatusCode::FORBIDDEN, "denied", m),
    }
}

/// A SQL string literal.
pub(super) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
