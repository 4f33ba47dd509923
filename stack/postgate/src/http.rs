//! The HTTP surface: `fn app() -> Router` (tested with `oneshot`) and `serve(listener, shutdown)`.

use crate::error::ApiError;
use crate::gateway::{Gateway, QueryResult, RowsAs, Statement};
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus::{Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Upper bounds of `postgate_rows_returned`'s buckets: 0 (writes without RETURNING, empty
/// results) up to the default row limit (`--max-rows`, 10,000).
pub const ROWS_BUCKETS: [f64; 10] = [
    0.0, 1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1_000.0, 5_000.0, 10_000.0,
];

/// The service's Prometheus metrics, served at `/metrics`.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    rows: HistogramVec,
}

impl Metrics {
    /// Registers the request counter, the latency histogram and the rows-returned histogram.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "postgate_requests_total",
                "Requests by endpoint and outcome",
            ),
            &["endpoint", "outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "postgate_request_duration_seconds",
                "Time to answer /query and /batch",
            ),
            &["endpoint"],
        )?;
        let rows = HistogramVec::new(
            HistogramOpts::new(
                "postgate_rows_returned",
                "Rows each statement of a successful /query or /batch returned",
            )
            .buckets(ROWS_BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(rows.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            duration,
            rows,
        })
    }

    /// One observation per statement: the rows it returned (0 for a statement with no result
    /// columns, such as an INSERT without RETURNING, whatever it affected).
    fn observe_rows(&self, endpoint: &str, results: &[QueryResult]) {
        let h = self.rows.with_label_values(&[endpoint]);
        for r in results {
            h.observe(r.rows.len() as f64);
        }
    }

    fn observe(&self, endpoint: &str, outcome: &str, started: Instant) {
        self.requests.with_label_values(&[endpoint, outcome]).inc();
        self.duration
            .with_label_values(&[endpoint])
            .observe(started.elapsed().as_secs_f64());
    }
}

pub struct AppState {
    pub gateway: Gateway,
    pub metrics: Metrics,
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/query", post(query))
        .route("/batch", post(batch))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        // Our own limit below answers with a JSON error.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` is cancelled; in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// The body of `POST /query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    #[serde(default)]
    pub rows_as: RowsAs,
}

/// The body of `POST /batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub statements: Vec<Statement>,
    #[serde(default)]
    pub rows_as: RowsAs,
}

/// The request decoder (also the fuzz target).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

async fn query(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let res = async {
        let req: QueryRequest = read_json(&st, body).await?;
        let info = st.gateway.authenticate(bearer(&headers)?).await?;
        let stmt = Statement {
            sql: req.sql,
            params: req.params,
        };
        let mut out = st.gateway.run(&info, &[stmt], req.rows_as).await?;
        st.metrics.observe_rows("query", &out);
        Ok::<QueryResult, ApiError>(out.remove(0))
    }
    .await;
    respond(&st, "query", started, res.map(|r| json!(r)))
}

async fn batch(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let res = async {
        let req: BatchRequest = read_json(&st, body).await?;
        let info = st.gateway.authenticate(bearer(&headers)?).await?;
        let results = st.gateway.run(&info, &req.statements, req.rows_as).await?;
        st.metrics.observe_rows("batch", &results);
        Ok::<_, ApiError>(json!({ "results": results }))
    }
    .await;
    respond(&st, "batch", started, res)
}

fn respond(
    st: &AppState,
    endpoint: &str,
    started: Instant,
    res: Result<serde_json::Value, ApiError>,
) -> Response {
    match res {
        Ok(v) => {
            st.metrics.observe(endpoint, "ok", started);
            Json(v).into_response()
        }
        Err(e) => {
            st.metrics.observe(endpoint, e.code, started);
            e.into_response()
        }
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)
}

async fn read_json<T: DeserializeOwned>(st: &AppState, body: Body) -> Result<T, ApiError> {
    let max = st.gateway.settings().limits.max_body_bytes;
    let bytes: Bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body passes {max} bytes"),
        )
    })?;
    decode(&bytes)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.gateway.ready().await {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable",
        )
        .into_response()
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode(&st.metrics.registry.gather(), &mut buf) {
        return ApiError::internal("encoding metrics", &e).into_response();
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_string())],
        buf,
    )
        .into_response()
}
