//! Errors sent to clients: a stable `code`, a message, and for the client's own SQL the SQLSTATE and
//! position. Internal failures are logged and answered with a generic message: no connection
//! strings, role names or paths ever reach a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio_postgres::error::ErrorPosition;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// In a batch, the index of the failing statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            sqlstate: None,
            position: None,
            statement: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing, unknown, expired or revoked token",
        )
    }

    /// A statement changed the role or left the transaction: the checks around each statement
    /// (the gateway's and the one-sync read path's) answer this, and roll back.
    pub fn session_changed() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "session_changed",
            "the statement changed the role or the transaction; it was rolled back",
        )
    }

    /// A failure of ours: logged with its detail, answered without it.
    pub fn internal(context: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!("{context}: {detail}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable, try again",
        )
    }

    pub fn at(mut self, statement: usize) -> Self {
        self.statement = Some(statement);
        self
    }

    /// An error raised by the client's own statement.
    pub fn from_user_sql(e: &tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            return Self::internal("running a statement", e);
        };
        let position = match db.position() {
            Some(ErrorPosition::Original(p)) => Some(*p),
            _ => None,
        };
        Self::from_db_parts(db.code().code(), db.message(), position)
    }

    /// An error PostgreSQL raised for the client's own SQL, from its SQLSTATE, message and
    /// position.
    pub fn from_db_parts(state: &str, message: &str, position: Option<u32>) -> Self {
        let (status, code) = match state {
            "57014" => (StatusCode::REQUEST_TIMEOUT, "statement_timeout"),
            "42501" => (StatusCode::FORBIDDEN, "permission_denied"),
            "25006" => (StatusCode::FORBIDDEN, "read_only"),
            s if s.starts_with("42") => (StatusCode::BAD_REQUEST, "sql_error"),
            s if s.starts_with("53") || s.starts_with("54") => {
                (StatusCode::UNPROCESSABLE_ENTITY, "resource_limit")
            }
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "sql_error"),
        };
        ApiError {
            status,
            code,
            message: message.to_string(),
            sqlstate: Some(state.to_string()),
            position,
            statement: None,
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(Body { error: &self })).into_response()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(s) = &self.sqlstate {
            write!(f, " (SQLSTATE {s})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}
