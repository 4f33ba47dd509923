//! The general path: a client's statements in one transaction as the token's role, BEGIN to
//! COMMIT, with the role and read-only checks between statements and with the COMMIT, and the
//! limits on what comes back.

use super::plans::{certainly_stale, may_be_stale};
use super::rows::{Budget, row_limit, shape_row};
use super::{Column, Gateway, QueryResult, RowsAs, Statement, quote_ident, quote_literal};
use crate::db::TokenInfo;
use crate::error::ApiError;
use crate::types::{self, JsonParam, Raw};
use axum::http::StatusCode;
use deadpool_postgres::Object;
use futures_util::TryStreamExt as _;
use std::pin::pin;
use std::task::Poll;
use tokio::sync::oneshot;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::ToSql;

impl Gateway {
    /// One attempt: BEGIN to COMMIT. On an error the transaction may still be open; the caller
    /// ends it.
    pub(super) async fn run_tx(
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
            Err(e) if is_session_changed(&e) => Err(Failure::Failed(
                ApiError::session_changed().at(statements.len() - 1),
            )),
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
            return Err(ApiError::session_changed());
        }
        Ok(())
    }
}

/// Why an attempt failed: with a statement prepared earlier on this connection that may no longer
/// fit the schema (worth one retry), or for good.
pub(super) enum Failure {
    /// Statement index, the plan generation it was prepared at, the error.
    Stale(usize, u32, ApiError),
    Failed(ApiError),
}

impl Failure {
    pub(super) fn at(self, i: usize) -> Failure {
        match self {
            Failure::Stale(_, g, e) => Failure::Stale(i, g, e.at(i)),
            Failure::Failed(e) => Failure::Failed(e.at(i)),
        }
    }
}

/// ROLLBACK whatever an attempt left open (a no-op warning when nothing is).
pub(super) async fn end_transaction(client: &Object) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("ROLLBACK").await
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
