//! The HTTP face of the runner: worker routing, `/health`, `/ready`, `/metrics`, and the
//! workflows API (`/workflows/...`, in `crate::workflow::http`).
//! A request whose host names a worker always goes to the worker, even for `/health`.
//! [`serve`] hands each request from hyper straight to [`handle`] (no router in between: every
//! path is ours to route); [`app`] wraps the same [`handle`] as an axum `Router` for tests.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::js::{HttpRequest, InvokeError};
use crate::metrics::Metrics;
use crate::registry::Registry;

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// False until start-up is done and again once shutdown begins.
    pub ready: Arc<AtomicBool>,
    /// The workflows API's bearer token (`/workflows/...`); None: that API answers 404.
    pub workflows_token: Option<crate::workflow::http::Token>,
}

/// The runner's HTTP service as a `Router` (one fallback: [`handle`]), for `oneshot` tests.
pub fn app(state: AppState) -> Router {
    Router::new()
        .fallback(|State(st): State<AppState>, req: Request| async move { handle(&st, req).await })
        .with_state(state)
}

/// Serve HTTP/1.1 on `listener` until `shutdown`; then stop accepting and let the connections
/// in flight finish their current request within `grace` (keep-alive connections are closed
/// after it; what is still open after `grace` is dropped).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let state = Arc::new(state);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: say so and retry shortly.
                    crate::log::error("accepting a connection", &e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let st = state.clone();
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let st = st.clone();
            async move { Ok::<_, Infallible>(handle(&st, req.map(Body::new)).await) }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that went away mid-request is not the runner's error.
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        crate::log::line(
            "warn",
            "connections still open after the grace period were dropped",
            json!({"grace_secs": grace.as_secs_f64()}),
        );
    }
}

pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": code, "message": message}).to_string(),
    )
        .into_response()
}

/// Answers one request: a worker's route, else `/health`, `/ready`, `/metrics` or a JSON 404.
pub async fn handle(st: &AppState, req: Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("")
        .to_string();
    let path = req.uri().path().to_string();
    let Some(worker) = st.registry.route(&host, &path) else {
        return match path.as_str() {
            "/health" => (StatusCode::OK, "ok\n").into_response(),
            "/ready" => ready(st).await,
            "/metrics" => metrics(st).await,
            p if p.starts_with("/workflows/") => crate::workflow::http::handle(st, req).await,
            _ => json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no worker serves this route",
            ),
        };
    };
    let started = Instant::now();
    let name = worker.def.name.clone();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        // A v4 UUID from the thread's own generator: no system call per request.
        .unwrap_or_else(|| {
            uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .to_string()
        });
    let method = req.method().to_string();
    let mut headers = String::with_capacity(256);
    for (k, v) in req.headers() {
        if let Ok(v) = v.to_str() {
            headers.push_str(k.as_str());
            headers.push('\0');
            headers.push_str(v);
            headers.push('\0');
        }
    }
    let scheme = if req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        == Some("https")
    {
        "https"
    } else {
        "http"
    };
    let url = format!(
        "{scheme}://{}{}",
        if host.is_empty() { "localhost" } else { &host },
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let max_body = worker.def.body_bytes;
    let body = match to_bytes(req.into_body(), max_body).await {
        Ok(b) => b,
        Err(_) => {
            st.metrics.observe_request(&name, 413, started.elapsed());
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("request body is larger than {max_body} bytes"),
            );
        }
    };
    let body = (!body.is_empty()).then(|| crate::body::Body::from_bytes(Vec::from(body)));
    let res = worker
        .fetch(HttpRequest {
            method,
            url,
            headers,
            body,
            request_id: request_id.clone(),
        })
        .await;
    let resp = match res {
        Ok(r) => {
            let mut hm = HeaderMap::new();
            for (k, v) in &r.headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::try_from(k.as_str()),
                    HeaderValue::try_from(v.as_str()),
                ) {
                    hm.append(k, v);
                }
            }
            let status =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = Response::new(Body::from(r.body));
            *resp.status_mut() = status;
            *resp.headers_mut() = hm;
            resp
        }
        Err(e) => {
            crate::log::line(
                "error",
                "worker invocation failed",
                json!({"worker": name, "request_id": request_id, "error": e.to_string()}),
            );
            match &e {
                InvokeError::Limit { .. } => json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "limit_exceeded",
                    &e.to_string(),
                ),
                InvokeError::Unavailable { .. } => json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "worker_unavailable",
                    &e.to_string(),
                ),
                // The script's own error stays in the logs, not in the response.
                InvokeError::Script { worker, .. } => json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "worker_error",
                    &format!("worker {worker} threw an exception; see its logs"),
                ),
            }
        }
    };
    st.metrics
        .observe_request(&name, resp.status().as_u16(), started.elapsed());
    let mut resp = resp;
    if let Ok(v) = HeaderValue::try_from(request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn ready(st: &AppState) -> Response {
    if !st.ready.load(Ordering::SeqCst) {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "starting or shutting down",
        );
    }
    let ok = async {
        let c = st.pool.get().await.ok()?;
        c.simple_query("SELECT 1").await.ok()
    }
    .await;
    match ok {
        Some(_) => (StatusCode::OK, "ready\n").into_response(),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "database unreachable",
        ),
    }
}

async fn metrics(st: &AppState) -> Response {
    let depth = async {
        let c = st.pool.get().await.ok()?;
        crate::queue::stats(&**c).await.ok()
    }
    .await
    .unwrap_or_default();
    let instances = crate::workflow::api::instance_counts(&st.pool)
        .await
        .unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(&depth, &instances),
    )
        .into_response()
}
