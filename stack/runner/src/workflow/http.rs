//! The workflows HTTP API, behind a bearer token compared in constant time (no token set: the
//! API answers 404, it is never open):
//!
//! - `POST /workflows/NAME[?wait=SECONDS]` body `{"id"?, "params"?}` (or `"payload"`): 202
//!   `{"id"}`, or 200 with the status when the instance finished within `wait` (at most 60 s);
//! - `GET /workflows/NAME/ID`: the status, output or error, and the steps with their timings;
//! - `POST /workflows/NAME/ID/events/TYPE` body: the event's payload (JSON): 202;
//! - `PATCH /workflows/NAME/ID/status` body `{"action": "pause"|"resume"|"terminate"|"restart"}`;
//! - `POST /workflows/hooks/TOKEN` body: one payload for a hook (`step.createHook`), 202. The
//!   hook's token is its credential: this route needs no bearer token and works with the API off.
//!
//! Internal errors are logged, never sent; bad input gets a 400 saying what is wrong.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::api::{self, ApiError};
use crate::http::{AppState, json_error};

/// The API's bearer token.
#[derive(Clone)]
pub struct Token(std::sync::Arc<[u8]>);

/// Never printed.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// None for a missing or empty token: the API stays off.
    pub fn new(token: Option<&str>) -> Option<Token> {
        token
            .filter(|t| !t.is_empty())
            .map(|t| Token(t.as_bytes().into()))
    }

    /// Does the request carry this token? Constant time in the token's bytes.
    fn admits(&self, req: &Request) -> bool {
        let Some(given) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
        else {
            return false;
        };
        bool::from(given.as_bytes().ct_eq(&self.0))
    }
}

/// Largest request body: an event payload or params of 1 MiB, with room for the envelope.
const MAX_BODY: usize = (1 << 20) + 4096;

pub async fn handle(st: &AppState, req: Request) -> Response {
    // A hook's URL is its own credential (an unguessable token a workflow handed out), so it
    // answers with or without the API's token.
    if req.method() == Method::POST
        && let Some(hook) = req.uri().path().strip_prefix("/workflows/hooks/")
    {
        let hook = hook.to_string();
        return deliver(st, &hook, req).await;
    }
    let Some(token) = &st.workflows_token else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the workflows API is off (set RUNNER_WORKFLOWS_TOKEN)",
        );
    };
    if !token.admits(&req) {
        return (
            StatusCode::UNAUTHORIZED,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::WWW_AUTHENTICATE, "Bearer"),
            ],
            json!({"error": "unauthorized", "message": "a valid bearer token is required"})
                .to_string(),
        )
            .into_response();
    }
    // `?wait=SECONDS` (at most 60): answer with the outcome if the instance finishes by then.
    let wait = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("wait=")))
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(|v| std::time::Duration::from_secs_f64(v.min(60.0)));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches("/workflows/").split('/').collect();
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(too_large) => return too_large,
    };
    let json_body = || json_of(&body);
    let pool = &st.pool;
    let r: Result<(StatusCode, Value), ApiError> = async {
        match (&method, parts.as_slice()) {
            (&Method::POST, [name]) => {
                let b = json_body()?;
                let id = match &b["id"] {
                    Value::Null => None,
                    Value::String(s) => Some(s.as_str()),
                    _ => return Err(ApiError::Bad("\"id\" must be a string".into())),
                };
                let params = b.get("params").or_else(|| b.get("payload")).cloned();
                let id = api::create(pool, name, id, &params.unwrap_or(Value::Null)).await?;
                match wait {
                    Some(within) => match finished(pool, name, &id, within).await? {
                        Some(status) => Ok((StatusCode::OK, status)),
                        None => Ok((StatusCode::ACCEPTED, json!({"id": id}))),
                    },
                    None => Ok((StatusCode::ACCEPTED, json!({"id": id}))),
                }
            }
            (&Method::GET, [name, id]) => {
                Ok((StatusCode::OK, api::status(pool, Some(name), id).await?))
            }
            (&Method::POST, [name, id, "events", ty]) => {
                api::status(pool, Some(name), id).await?;
                let ev = api::send_event(pool, id, ty, &json_body()?).await?;
                Ok((StatusCode::ACCEPTED, json!({"event": ev})))
            }
            (&Method::PATCH, [name, id, "status"]) => {
                api::status(pool, Some(name), id).await?;
                let b = json_body()?;
                let action = b["action"]
                    .as_str()
                    .or_else(|| b["status"].as_str())
                    .unwrap_or("");
                Ok((StatusCode::OK, api::control(pool, id, action).await?))
            }
            _ => Err(ApiError::NotFound(path.clone())),
        }
    }
    .await;
    match r {
        Ok((status, v)) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Err(e) => answer_error(e),
    }
}

/// The answer to a failed call: 404, 400 with the message, or 500 (logged, never sent).
fn answer_error(e: ApiError) -> Response {
    match e {
        ApiError::NotFound(what) => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("not found: {what}"),
        ),
        ApiError::Bad(m) => json_error(StatusCode::BAD_REQUEST, "bad_request", &m),
        ApiError::Db(e) => {
            crate::log::error("workflows API", &e);
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

/// The request's body, or the 413 answer when it is over [`MAX_BODY`].
async fn read_body(req: Request) -> Result<axum::body::Bytes, Response> {
    to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the body is over 1 MiB",
        )
    })
}

/// A body as JSON (empty: `null`), or a 400 saying why not.
fn json_of(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| ApiError::Bad(format!("the body is not JSON: {e}")))
}

/// `POST /workflows/hooks/TOKEN`: the body (JSON, or empty for `null`) goes to the hook's
/// instance; 202, or 404 for a token no hook has, 400 for a body that is not JSON or an
/// instance that takes no more events.
async fn deliver(st: &AppState, token: &str, req: Request) -> Response {
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(too_large) => return too_large,
    };
    let r = match json_of(&body) {
        Ok(p) => api::deliver_hook(&st.pool, token, &p).await,
        Err(e) => Err(e),
    };
    match r {
        Ok(_) => (
            StatusCode::ACCEPTED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"accepted": true}).to_string(),
        )
            .into_response(),
        Err(e) => answer_error(e),
    }
}

/// The instance's status once it is complete, errored or terminated, polled every 100 ms until
/// `within` has passed (then `None`).
async fn finished(
    pool: &deadpool_postgres::Pool,
    name: &str,
    id: &str,
    within: std::time::Duration,
) -> Result<Option<Value>, ApiError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = api::status(pool, Some(name), id).await?;
        if matches!(
            status["status"].as_str(),
            Some("complete" | "errored" | "terminated")
        ) {
            return Ok(Some(status));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
