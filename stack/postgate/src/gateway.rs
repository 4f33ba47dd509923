//! Runs a client's statements for a token: the one code path behind `POST /query`, `POST /batch`
//! and the library API the runner links for `env.DB`.

use crate::check::CheckError;
use crate::checker::Checker;
use crate::config::Settings;
use crate::db::{Db, DbError, TokenInfo};
use crate::error::ApiError;
use crate::pipeline::{self, PipeError};
use crate::token;
use crate::types::{self, JsonParam, Raw};
use axum::http::StatusCode;
use deadpool_postgres::Object;
use futures_util::TryStreamExt as _;
use lru::LruCache;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Instant;
use tokio::sync::oneshot;
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
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
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

    /// A read-only token's single statement with one sync point (`crate::pipeline`); `None` when
    /// that path does not take it (no TCP session, a type that is not built in, a statement that
    /// may have gone stale): the general path runs it then.
    async fn read_in_one_sync(
        &self,
        info: &TokenInfo,
        s: &Statement,
        rows_as: RowsAs,
    ) -> Option<Result<QueryResult, ApiError>> {
        let mut session = self.db.pipe_session(info).await.ok().flatten()?;
        let limits = &self.settings.limits;
        let timeout_ms = limits.statement_timeout.as_millis().max(1);
        let (role, search_path) = (info.role(), quote_ident(info.schema()));
        let (timeout, idle) = (
            timeout_ms.to_string(),
            timeout_ms.saturating_mul(3).to_string(),
        );
        let setup = pipeline::ReadSetup {
            role: &role,
            search_path: &search_path,
            statement_timeout_ms: &timeout,
            idle_timeout_ms: &idle,
        };
        for attempt in 0..2 {
            let (text, generation) = self.prepared_text(&s.sql, None);
            let prepared_earlier = session.has(&text);
            match self
                .read_attempt(&mut session, &setup, &text, s, rows_as)
                .await
            {
                Ok(r) => return Some(Ok(r)),
                // A statement a schema change left unusable: prepared afresh under the next plan
                // generation (PgBouncer finds server-side statements by their text), once.
                Err(PipeError::Db(e))
                    if attempt == 0
                        && (certainly_stale(&e) || (prepared_earlier && may_be_stale(&e))) =>
                {
                    session.forget(&text);
                    self.replan(&s.sql, generation);
                }
                Err(PipeError::Db(e)) => return Some(Err(e.at(0))),
                Err(_) => return None,
            }
        }
        None
    }

    async fn read_attempt(
        &self,
        session: &mut pipeline::Session,
        setup: &pipeline::ReadSetup<'_>,
        text: &str,
        s: &Statement,
        rows_as: RowsAs,
    ) -> Result<QueryResult, PipeError> {
        let limits = &self.settings.limits;
        let stmt = session.statement(text, setup).await?;
        let params: Vec<Option<String>> = s
            .params
            .iter()
            .enumerate()
            .map(|(i, v)| match (v, stmt.params.get(i)) {
                (Value::Null, _) => None,
                (v, Some(ty)) => Some(types::param_text(v, ty)),
                (v, None) => Some(types::param_text(v, &tokio_postgres::types::Type::TEXT)),
            })
            .collect();
        let columns: Vec<Column> = stmt
            .columns
            .iter()
            .map(|(name, ty)| Column {
                name: name.clone(),
                type_name: types::type_name(ty),
            })
            .collect();
        let mut budget = Budget {
            bytes: 0,
            max: limits.max_response_bytes,
        };
        let mut rows = Vec::new();
        let affected = session
            .read(setup, &stmt, &params, |raw| {
                if rows.len() >= limits.max_rows {
                    return Err(row_limit(limits.max_rows));
                }
                let mut values = Vec::with_capacity(raw.len());
                for ((name, ty), v) in stmt.columns.iter().zip(raw) {
                    values.push(types::decode(ty, *v).map_err(|e| {
                        ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "unsupported_type",
                            format!("column {name}: {e}"),
                        )
                    })?);
                }
                let value = shape_row(values, &columns, rows_as);
                budget.add(&value)?;
                rows.push(value);
                Ok(())
            })
            .await?;
        Ok(QueryResult::new(columns, rows, affected))
    }

    /// One attempt: BEGIN to COMMIT. On an error the transaction may still be open; the caller
    /// ends it.
    async fn run_tx(
        &self,
        client: &Object,
        info: &TokenInfo,
        statements: &[Statement],
        rows_as: RowsAs,
    ) -> Result<Vec<QueryResult>, Failure> {
        let limits = &self.settings.limits;
        let timeout_ms = limits.statement_timeout.as_millis().max(1);
        let read_only = info.permissions.read_only();
        // One statement: set_config(..., true) is SET LOCAL. It also takes the snapshot, which
        // makes a later `SET TRANSACTION READ WRITE` impossible.
        let setup = format!(
            "BEGIN{}; SELECT pg_catalog.set_config('role', {}, true), \
             pg_catalog.set_config('search_path', {}, true), \
             pg_catalog.set_config('statement_timeout', '{timeout_ms}', true), \
             pg_catalog.set_config('idle_in_transaction_session_timeout', '{}', true)",
            if read_only { " READ ONLY" } else { "" },
            quote_literal(&info.role()),
            quote_literal(&quote_ident(info.schema())),
            timeout_ms.saturating_mul(3),
        );
        let commit = check_then_commit(info);
        let mut budget = Budget {
            bytes: 0,
            max: limits.max_response_bytes,
        };
        // The COMMIT travels with the statement only when nothing can need rolling back.
        let commit_early = read_only && statements.len() == 1;
        let (sent, sent_rx) = oneshot::channel::<()>();
        let first = self.execute(client, &statements[0], rows_as, &mut budget, Some(sent));
        let early_commit = async {
            match sent_rx.await {
                Ok(()) if commit_early => Some(client.batch_execute(&commit).await),
                _ => None,
            }
        };
        // Sent in the order polled: the set-up, then the statement, then the COMMIT.
        let (setup_result, first, committed) =
            tokio::join!(client.batch_execute(&setup), first, early_commit);
        if let Err(e) = setup_result {
            return Err(Failure::Failed(ApiError::internal(
                "starting the transaction",
                &e,
            )));
        }
        let mut results = vec![first.map_err(|f| f.at(0))?];
        for (i, s) in statements.iter().enumerate().skip(1) {
            // The previous statement must have left the transaction as it found it: same role,
            // same read-only mode, still inside our transaction (SET LOCAL ROLE ends with it).
            // `pg_catalog.` so that no function of the tenant's schema can stand in.
            self.check_session(client, info)
                .await
                .map_err(|e| Failure::Failed(e.at(i - 1)))?;
            results.push(
                self.execute(client, s, rows_as, &mut budget, None)
                    .await
                    .map_err(|f| f.at(i))?,
            );
        }
        // The last statement's check travels with the COMMIT, in one message: when it fails it
        // raises, PostgreSQL skips the COMMIT, and the caller's ROLLBACK ends the transaction.
        let committed = match committed {
            Some(r) => r,
            None => client.batch_execute(&commit).await,
        };
        match committed {
            Ok(()) => Ok(results),
            Err(e) if is_session_changed(&e) => {
                Err(Failure::Failed(session_changed().at(statements.len() - 1)))
            }
            Err(e) => Err(Failure::Failed(ApiError::from_user_sql(&e))),
        }
    }

    /// Runs one statement and reads its rows within the limits. `sent` is told once the
    /// statement is on its way to the server, so that a COMMIT may be queued behind it.
    async fn execute(
        &self,
        client: &Object,
        s: &Statement,
        rows_as: RowsAs,
        budget: &mut Budget,
        sent: Option<oneshot::Sender<()>>,
    ) -> Result<QueryResult, Failure> {
        let limits = &self.settings.limits;
        // The connection is ours alone for the request: the cache grows only if it prepared now.
        let before = client.statement_cache.size();
        let (text, generation) = self.prepared_text(&s.sql, None);
        let stmt = client
            .prepare_cached(&text)
            .await
            .map_err(|e| Failure::Failed(ApiError::from_user_sql(&e)))?;
        let prepared_earlier = client.statement_cache.size() == before;
        let stale = |e: ApiError| {
            if certainly_stale(&e) || (prepared_earlier && may_be_stale(&e)) {
                Failure::Stale(0, generation, e)
            } else {
                Failure::Failed(e)
            }
        };
        if stmt.params().len() != s.params.len() {
            return Err(Failure::Failed(ApiError::bad_request(format!(
                "the statement takes {} parameters, {} given",
                stmt.params().len(),
                s.params.len()
            ))));
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
        let query = client.query_raw(&stmt, params.iter().map(|p| p as &dyn ToSql));
        let mut query = pin!(query);
        // The first poll writes Bind/Execute to the connection.
        let polled = futures_util::poll!(query.as_mut());
        if let Some(sent) = sent {
            let _ = sent.send(());
        }
        let stream = match polled {
            Poll::Ready(r) => r,
            Poll::Pending => query.await,
        }
        .map_err(|e| stale(ApiError::from_user_sql(&e)))?;
        let mut stream = pin!(stream);
        let mut rows = Vec::new();
        while let Some(row) = stream
            .try_next()
            .await
            .map_err(|e| stale(ApiError::from_user_sql(&e)))?
        {
            if rows.len() >= limits.max_rows {
                return Err(Failure::Failed(row_limit(limits.max_rows)));
            }
            let mut values = Vec::with_capacity(columns.len());
            for (j, col) in stmt.columns().iter().enumerate() {
                let raw: Raw<'_> = row
                    .try_get(j)
                    .map_err(|e| Failure::Failed(ApiError::internal("reading a column", &e)))?;
                let v = types::decode(col.type_(), raw.0).map_err(|e| {
                    Failure::Failed(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unsupported_type",
                        format!("column {}: {e}", col.name()),
                    ))
                })?;
                values.push(v);
            }
            let value = shape_row(values, &columns, rows_as);
            budget.add(&value).map_err(Failure::Failed)?;
            rows.push(value);
        }
        Ok(QueryResult::new(columns, rows, stream.rows_affected()))
    }

    /// The text a statement is prepared under. PgBouncer keeps prepared statements per server
    /// session by their text, past a client's Close, so after a schema change made one unusable
    /// ("cached plan must not change result type") the same text would find it again: such a
    /// statement is prepared from then on with a comment naming a new plan generation. Returns
    /// the text of `sql` at `generation` (by default the current one), and that generation.
    fn prepared_text<'a>(&self, sql: &'a str, generation: Option<u32>) -> (Cow<'a, str>, u32) {
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
    fn replan(&self, sql: &str, failed: u32) {
        let mut generations = self
            .plan_generations
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if generations.peek(sql).copied().unwrap_or(0) <= failed {
            generations.put(sql.to_string(), failed + 1);
        }
    }

    /// One round trip between statements of a batch: the role and the read-only mode unchanged.
    async fn check_session(&self, client: &Object, info: &TokenInfo) -> Result<(), ApiError> {
        let state = client
            .simple_query(
                "SELECT current_user, pg_catalog.current_setting('transaction_read_only')",
            )
            .await
            .map_err(|e| ApiError::from_user_sql(&e))?;
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
        if user != info.role() || (info.permissions.read_only() && ro != "on") {
            return Err(session_changed());
        }
        Ok(())
    }
}

/// How many statements a pooled connection keeps prepared before it forgets them all.
const PREPARED_PER_CONNECTION: usize = 256;

/// Why an attempt failed: with a statement prepared earlier on this connection that may no longer
/// fit the schema (worth one retry), or for good.
enum Failure {
    /// Statement index, the plan generation it was prepared at, the error.
    Stale(usize, u32, ApiError),
    Failed(ApiError),
}

impl Failure {
    fn at(self, i: usize) -> Failure {
        match self {
            Failure::Stale(_, g, e) => Failure::Stale(i, g, e.at(i)),
            Failure::Failed(e) => Failure::Failed(e.at(i)),
        }
    }
}

/// Errors that only a prepared statement gone stale causes: its result type changed (`0A000`,
/// "cached plan must not change result type"), or it is gone from the server session (`26000`).
fn certainly_stale(e: &ApiError) -> bool {
    matches!(e.sqlstate.as_deref(), Some("0A000" | "26000"))
        && (e.sqlstate.as_deref() == Some("26000") || e.message.contains("cached plan"))
}

/// Errors that a schema change under a prepared statement causes: its result type changed
/// (`0A000`), it is gone from the server session (`26000`), or its parameter types no longer fit
/// (`42...`, `22P02`). A permission error is the answer, not staleness.
fn may_be_stale(e: &ApiError) -> bool {
    matches!(e.sqlstate.as_deref(), Some(s)
        if s == "0A000" || s == "26000" || s == "22P02" || (s.starts_with("42") && s != "42501"))
}

/// ROLLBACK whatever an attempt left open (a no-op warning when nothing is).
async fn end_transaction(client: &Object) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("ROLLBACK").await
}

/// A row as the client asked for it: an array, or an object (duplicate column names: the first
/// column wins; arrays keep them all).
fn shape_row(values: Vec<Value>, columns: &[Column], rows_as: RowsAs) -> Value {
    match rows_as {
        RowsAs::Arrays => Value::Array(values),
        RowsAs::Objects => {
            let mut m = Map::new();
            for (c, v) in columns.iter().zip(values) {
                m.entry(c.name.clone()).or_insert(v);
            }
            Value::Object(m)
        }
    }
}

fn row_limit(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "row_limit",
        format!("the statement returned more than {max} rows; add a LIMIT"),
    )
}

pub(crate) fn session_changed() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "session_changed",
        "the statement changed the role or the transaction; it was rolled back",
    )
}

/// What the role check raises when it fails (a cast that cannot succeed, computed at run time so
/// the planner cannot fold it).
const SESSION_CHANGED_MARK: &str = "postgate_session_changed:";

/// The role check: one row when `current_user` is `role` (an SQL expression of type name) and
/// `also` holds, else an error carrying [`SESSION_CHANGED_MARK`]. Operators and functions are
/// schema-qualified, so nothing the tenant defines can stand in for them.
fn role_check(role: &str, also: &str) -> String {
    format!(
        "SELECT CASE WHEN current_user OPERATOR(pg_catalog.=) {role}{also} \
         THEN 1 ELSE ('{SESSION_CHANGED_MARK}'::pg_catalog.text OPERATOR(pg_catalog.||) current_user::pg_catalog.text)::pg_catalog.int4 END"
    )
}

/// `AND` the transaction is still read-only.
const STILL_READ_ONLY: &str =
    " AND pg_catalog.current_setting('transaction_read_only') OPERATOR(pg_catalog.=) 'on'";

/// One message: the role and read-only check of the last statement, then COMMIT.
fn check_then_commit(info: &TokenInfo) -> String {
    let role = format!("'{}'::pg_catalog.name", info.role().replace('\'', "''"));
    // A read-only transaction cannot alter a role; one that may write must not have altered its
    // own login (see `pooler.login_untouched` in src/db/pooler_auth.sql).
    let also = if info.permissions.read_only() {
        STILL_READ_ONLY
    } else {
        " AND pooler.login_untouched()"
    };
    format!("{}; COMMIT", role_check(&role, also))
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

/// A pooled connection lent to one request. Handed back with [`Lent::release`] once the request
/// has ended its transaction. Dropped without that (the request's future was dropped mid-way,
/// as when its HTTP client goes away), the connection is closed instead of going back to the
/// pool: its transaction may still be open, holding the abandoned request's work.
struct Lent(Option<Object>);

impl Lent {
    fn release(mut self) -> Object {
        self.0.take().expect("a lent connection is released once")
    }
}

impl std::ops::Deref for Lent {
    type Target = Object;
    fn deref(&self) -> &Object {
        self.0
            .as_ref()
            .expect("a lent connection is used before its release")
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            discard(client);
        }
    }
}

/// A SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
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
