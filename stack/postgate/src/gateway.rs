//! Runs a client's statements for a token: the one code path behind `POST /query`, `POST /batch`
//! and the library API the runner links for `env.DB`.

use crate::check::{self, CheckError};
use crate::config::Settings;
use crate::db::{Db, DbError, TokenInfo};
use crate::error::ApiError;
use crate::token;
use crate::types::{self, JsonParam, Raw};
use axum::http::StatusCode;
use deadpool_postgres::Object;
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::pin::pin;
use std::sync::Mutex;
use std::time::Instant;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::ToSql;

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

pub struct Gateway {
    db: Db,
    settings: Settings,
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl Gateway {
    pub fn new(settings: Settings) -> Result<Gateway, DbError> {
        let db = Db::new(
            &settings.database_url,
            settings.pepper.clone(),
            settings.pool_size,
        )?;
        Ok(Gateway {
            db,
            settings,
            buckets: Mutex::new(HashMap::new()),
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
                self.take_rate(info.id)?;
                Ok(info)
            }
            Ok(None) => Err(ApiError::unauthorized()),
            Err(e) => Err(ApiError::internal("authenticating", &e)),
        }
    }

    /// Token bucket per token, in this replica's memory.
    fn take_rate(&self, id: i64) -> Result<(), ApiError> {
        let rate = self.settings.limits.rate_per_token;
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
            let sqls = statements.iter().map(|s| s.sql.clone()).collect();
            let (perms, schema) = (info.permissions, info.schema().to_string());
            tokio::task::spawn_blocking(move || check::check_all(sqls, perms, schema))
                .await
                .map_err(|e| ApiError::internal("checking statements", &e))?
                .map_err(|(i, e)| check_error(e).at(i))?;
        }
        let client = self
            .db
            .tenant_client(info)
            .await
            .map_err(|e| ApiError::internal("connecting", &e))?;
        let read_only = info.permissions.read_only();
        let timeout_ms = limits.statement_timeout.as_millis().max(1);
        // The snapshot taken by `SELECT 1` makes `SET TRANSACTION READ WRITE` impossible later.
        let setup = format!(
            "BEGIN{}; SET LOCAL ROLE {}; SET LOCAL search_path = {}; \
             SET LOCAL statement_timeout = {timeout_ms}; \
             SET LOCAL idle_in_transaction_session_timeout = {}; SELECT 1",
            if read_only { " READ ONLY" } else { "" },
            quote_ident(&info.role()),
            quote_ident(info.schema()),
            timeout_ms.saturating_mul(3),
        );
        // Pipelined: the setup and the first Parse go out together; the server runs them in order,
        // so the statement is parsed under the tenant's role and search_path.
        let (setup_result, first) = tokio::join!(
            client.batch_execute(&setup),
            client.prepare(&statements[0].sql)
        );
        if let Err(e) = setup_result {
            discard(client);
            return Err(ApiError::internal("starting the transaction", &e));
        }
        match self
            .run_in_tx(&client, info, statements, rows_as, first)
            .await
        {
            // The last statement's check travels with the COMMIT, in one message: when it fails it
            // raises, PostgreSQL skips the COMMIT, and the ROLLBACK below ends the transaction.
            Ok(results) => match client.batch_execute(&check_then_commit(info)).await {
                Ok(()) => Ok(results),
                Err(e) => {
                    let err = if is_session_changed(&e) {
                        session_changed().at(statements.len() - 1)
                    } else {
                        ApiError::from_user_sql(&e)
                    };
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        discard(client);
                    }
                    Err(err)
                }
            },
            Err(err) => {
                if client.batch_execute("ROLLBACK").await.is_err() {
                    discard(client);
                }
                Err(err)
            }
        }
    }

    async fn run_in_tx(
        &self,
        client: &Object,
        info: &TokenInfo,
        statements: &[Statement],
        rows_as: RowsAs,
        first: Result<tokio_postgres::Statement, tokio_postgres::Error>,
    ) -> Result<Vec<QueryResult>, ApiError> {
        let limits = &self.settings.limits;
        let role = info.role();
        let mut first = Some(first);
        let mut budget = Budget {
            bytes: 0,
            max: limits.max_response_bytes,
        };
        let mut results = Vec::with_capacity(statements.len());
        let last = statements.len() - 1;
        for (i, s) in statements.iter().enumerate() {
            let prepared = match first.take() {
                Some(p) => p,
                None => client.prepare(&s.sql).await,
            };
            let stmt = prepared.map_err(|e| ApiError::from_user_sql(&e).at(i))?;
            if stmt.params().len() != s.params.len() {
                return Err(ApiError::bad_request(format!(
                    "the statement takes {} parameters, {} given",
                    stmt.params().len(),
                    s.params.len()
                ))
                .at(i));
            }
            let params: Vec<JsonParam<'_>> = s.params.iter().map(JsonParam).collect();
            let columns: Vec<Column> = stmt
                .columns()
                .iter()
                .map(|c| Column {
                    name: c.name().to_string(),
                    type_name: types::type_name(c.type_()),
                })
                .collect();
            let stream = client
                .query_raw(&stmt, params.iter().map(|p| p as &dyn ToSql))
                .await
                .map_err(|e| ApiError::from_user_sql(&e).at(i))?;
            let mut stream = pin!(stream);
            let mut rows = Vec::new();
            while let Some(row) = stream
                .try_next()
                .await
                .map_err(|e| ApiError::from_user_sql(&e).at(i))?
            {
                if rows.len() >= limits.max_rows {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "row_limit",
                        format!(
                            "the statement returned more than {} rows; add a LIMIT",
                            limits.max_rows
                        ),
                    )
                    .at(i));
                }
                let mut values = Vec::with_capacity(columns.len());
                for (j, col) in stmt.columns().iter().enumerate() {
                    let raw: Raw<'_> = row
                        .try_get(j)
                        .map_err(|e| ApiError::internal("reading a column", &e))?;
                    let v = types::decode(col.type_(), raw.0).map_err(|e| {
                        ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "unsupported_type",
                            format!("column {}: {e}", col.name()),
                        )
                        .at(i)
                    })?;
                    values.push(v);
                }
                let value = match rows_as {
                    RowsAs::Arrays => Value::Array(values),
                    RowsAs::Objects => {
                        let mut m = Map::new();
                        for (c, v) in columns.iter().zip(values) {
                            // Duplicate names: the first column wins (arrays keep them all).
                            m.entry(c.name.clone()).or_insert(v);
                        }
                        Value::Object(m)
                    }
                };
                budget.add(&value).map_err(|e| e.at(i))?;
                rows.push(value);
            }
            let row_count = if columns.is_empty() {
                stream.rows_affected().unwrap_or(0)
            } else {
                rows.len() as u64
            };
            results.push(QueryResult {
                columns,
                rows,
                row_count,
            });
            // The statement must leave the transaction as it found it: same role, same read-only
            // mode, still inside our transaction (SET LOCAL ROLE ends with it). Anything else rolls
            // back, whatever the statement did. The last statement's check goes with the COMMIT
            // (`check_then_commit`); the others take one simple-protocol round trip here;
            // `pg_catalog.` so that no function of the tenant's schema can stand in.
            if i == last {
                break;
            }
            let state = client
                .simple_query(
                    "SELECT current_user, pg_catalog.current_setting('transaction_read_only')",
                )
                .await
                .map_err(|e| ApiError::from_user_sql(&e).at(i))?;
            let (user, ro) = state
                .iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some((
                        r.get(0).unwrap_or_default().to_string(),
                        r.get(1).unwrap_or_default().to_string(),
                    )),
                    _ => None,
                })
                .unwrap_or_default();
            if user != role || (info.permissions.read_only() && ro != "on") {
                return Err(session_changed().at(i));
            }
        }
        Ok(results)
    }
}

fn session_changed() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "session_changed",
        "the statement changed the role or the transaction; it was rolled back",
    )
}

/// What `check_then_commit` raises when the check fails (a cast that cannot succeed, computed at
/// run time so the planner cannot fold it).
const SESSION_CHANGED_MARK: &str = "postgate_session_changed:";

/// One message: the role and read-only check of the last statement, then COMMIT. Operators and
/// functions are schema-qualified, so nothing the tenant defines can stand in for them.
fn check_then_commit(info: &TokenInfo) -> String {
    let role = info.role().replace('\'', "''");
    let read_only = if info.permissions.read_only() {
        " AND pg_catalog.current_setting('transaction_read_only') OPERATOR(pg_catalog.=) 'on'"
    } else {
        ""
    };
    format!(
        "SELECT CASE WHEN current_user OPERATOR(pg_catalog.=) '{role}'::pg_catalog.name{read_only} \
         THEN 1 ELSE ('{SESSION_CHANGED_MARK}'::pg_catalog.text OPERATOR(pg_catalog.||) current_user::pg_catalog.text)::pg_catalog.int4 END; \
         COMMIT"
    )
}

fn is_session_changed(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| {
        d.code() == &tokio_postgres::error::SqlState::INVALID_TEXT_REPRESENTATION
            && d.message().contains(SESSION_CHANGED_MARK)
    })
}

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

/// Drops a connection whose state we cannot vouch for, instead of returning it to the pool.
fn discard(client: Object) {
    drop(Object::take(client));
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

struct Budget {
    bytes: usize,
    max: usize,
}

impl Budget {
    fn add(&mut self, v: &Value) -> Result<(), ApiError> {
        let mut counter = Counter(0);
        // Writing into a counter cannot fail.
        let _ = serde_json::to_writer(&mut counter, v);
        self.bytes += counter.0 + 1;
        if self.bytes > self.max {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "response_too_large",
                format!(
                    "the response would pass {} bytes; select fewer rows or columns",
                    self.max
                ),
            ));
        }
        Ok(())
    }
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
