//! A read-only token's single statement in one round trip with one sync point
//! (`crate::pipeline`), when its types are built in; the general path (`tx`) takes the rest.

use super::plans::{certainly_stale, may_be_stale};
use super::rows::{Budget, row_limit, shape_row};
use super::{Column, Gateway, QueryResult, RowsAs, Statement, quote_ident};
use crate::db::TokenInfo;
use crate::error::ApiError;
use crate::pipeline::{self, PipeError};
use crate::types;
use axum::http::StatusCode;
use serde_json::Value;

impl Gateway {
    /// A read-only token's single statement with one sync point (`crate::pipeline`); `None` when
    /// that path does not take it (no TCP session, a type that is not built in, a statement that
    /// may have gone stale): the general path runs it then.
    pub(super) async fn read_in_one_sync(
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
}
