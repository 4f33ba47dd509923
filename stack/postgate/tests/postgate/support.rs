//! Test support: a real PostgreSQL 17 in a container (our image), the role bootstrap, and a
//! postgate `app()` driven with `oneshot`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use postgate::http::{AppState, Metrics, app};
use postgate::token::Permissions;
use postgate::{Gateway, Limits, Settings, admin};
use serde_json::Value;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};
use tower::ServiceExt as _;

pub const IMAGE: &str = "stackctl/postgres:17";
const SUPER_PASSWORD: &str = "super-secret-test";
const SERVICE_PASSWORD: &str = "service-secret-test";
const CLI_PASSWORD: &str = "cli-secret-test";
pub const PEPPER: &[u8] = b"test-pepper-0123456789abcdef";

/// A PostgreSQL container removed on drop.
pub struct Pg {
    name: String,
    pub port: u16,
}

impl Pg {
    pub async fn start() -> Pg {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "postgate-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let out = Command::new("docker")
            .args([
                "run",
                "-d",
                "--rm",
                "--name",
                &name,
                "-p",
                "127.0.0.1::5432",
                "-e",
            ])
            .arg(format!("POSTGRES_PASSWORD={SUPER_PASSWORD}"))
            .arg(IMAGE)
            .output()
            .expect("these tests need Docker: running `docker` failed");
        assert!(
            out.status.success(),
            "docker run {IMAGE} failed (build it: docker build --network host -t {IMAGE} stack/postgres): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Pg { name, port: 0 };
        let out = Command::new("docker")
            .args(["port", &pg.name, "5432/tcp"])
            .output()
            .expect("docker port");
        let text = String::from_utf8_lossy(&out.stdout);
        let port = text
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port published for {}: {text}", pg.name));
        pg.port = port;
        // Readiness is a successful query as the superuser, with a deadline.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(c) = pg.try_connect("postgres", SUPER_PASSWORD).await
                && c.simple_query("SELECT 1").await.is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL in {} not ready in 90 s",
                pg.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pg
    }

    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    async fn try_connect(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&self.url(user, password), NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    pub async fn connect(&self, user: &str, password: &str) -> Client {
        self.try_connect(user, password)
            .await
            .unwrap_or_else(|e| panic!("connecting as {user}: {e}"))
    }

    pub async fn superuser(&self) -> Client {
        self.connect("postgres", SUPER_PASSWORD).await
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// TEST-ONLY role bootstrap: the minimum of the platform's bootstrap that postgate needs (the
/// service login `postgate`, an admin login `postgate_cli` holding postgate_admin), then
/// postgate's platform migration (roles and schema), as `stackctl migrate` applies it.
pub async fn test_role_bootstrap(su: &Client) {
    su.batch_execute(&format!(
        "CREATE ROLE postgate LOGIN NOINHERIT PASSWORD '{SERVICE_PASSWORD}';
         CREATE ROLE postgate_cli LOGIN PASSWORD '{CLI_PASSWORD}';"
    ))
    .await
    .expect("bootstrap logins");
    su.batch_execute(postgate::schema::SQL)
        .await
        .expect("V1__postgate.sql");
    su.batch_execute("GRANT postgate_admin TO postgate_cli")
        .await
        .expect("grant admin");
    // Idempotent: a second run changes nothing and does not fail.
    su.batch_execute(postgate::schema::SQL)
        .await
        .expect("V1__postgate.sql again");
}

impl Harness {
    pub fn service_url(&self) -> String {
        self.pg.url("postgate", SERVICE_PASSWORD)
    }

    pub fn admin_url(&self) -> String {
        self.pg.url("postgate_cli", CLI_PASSWORD)
    }
}

pub struct Harness {
    pub pg: Pg,
    pub state: Arc<AppState>,
    parser_check: bool,
    limits: Limits,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn replica_state(
    pg: &Pg,
    parser_check: bool,
    limits: Limits,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Arc<AppState> {
    let settings = Settings {
        database_url: pg.url("postgate", SERVICE_PASSWORD),
        pepper: PEPPER.to_vec(),
        limits,
        parser_check,
        pool_size: 4,
    };
    let state = Arc::new(AppState {
        gateway: Gateway::new(settings).expect("gateway"),
        metrics: Metrics::new().expect("metrics"),
    });
    tokio::spawn(state.gateway.background(shutdown.clone()));
    state
}

pub fn test_limits() -> Limits {
    Limits {
        max_body_bytes: 64 * 1024,
        max_rows: 1000,
        max_response_bytes: 256 * 1024,
        statement_timeout: Duration::from_millis(1500),
        max_batch: 20,
        rate_per_token: 0,
    }
}

impl Harness {
    pub async fn new(parser_check: bool) -> Harness {
        Self::with_limits(parser_check, test_limits()).await
    }

    pub async fn with_limits(parser_check: bool, limits: Limits) -> Harness {
        let pg = Pg::start().await;
        test_role_bootstrap(&pg.superuser().await).await;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let state = replica_state(&pg, parser_check, limits.clone(), &shutdown);
        Harness {
            pg,
            state,
            parser_check,
            limits,
            shutdown,
        }
    }

    /// Another postgate (as a second replica would be) on the same database, background running.
    pub fn replica(&self) -> Arc<AppState> {
        replica_state(
            &self.pg,
            self.parser_check,
            self.limits.clone(),
            &self.shutdown,
        )
    }

    pub async fn admin(&self) -> Client {
        self.pg.connect("postgate_cli", CLI_PASSWORD).await
    }

    pub async fn service_login(&self) -> Client {
        self.pg.connect("postgate", SERVICE_PASSWORD).await
    }

    pub async fn tenant(&self, name: &str) {
        admin::create_tenant(&self.admin().await, name)
            .await
            .expect("create tenant");
    }

    pub async fn token(&self, tenant: &str, perms: &str) -> String {
        self.token_expiring(tenant, perms, None).await
    }

    pub async fn token_expiring(&self, tenant: &str, perms: &str, secs: Option<u64>) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}", N.fetch_add(1, Ordering::SeqCst));
        admin::create_token(
            &mut self.admin().await,
            PEPPER,
            tenant,
            &name,
            Permissions::parse(perms).expect("permissions"),
            secs,
        )
        .await
        .expect("create token")
        .secret
    }

    /// POSTs `body` to `path` with `token`; returns the status and the JSON body.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        self.post_raw(path, token, body.to_string()).await
    }

    pub async fn post_raw(&self, path: &str, token: &str, body: String) -> (StatusCode, Value) {
        post_to(&self.state, path, token, body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let req = Request::get(path).body(Body::empty()).expect("request");
        let res = app(self.state.clone()).oneshot(req).await.expect("oneshot");
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `/query` with `sql` and `params`.
    pub async fn query(&self, token: &str, sql: &str, params: Value) -> (StatusCode, Value) {
        self.post(
            "/query",
            token,
            &serde_json::json!({ "sql": sql, "params": params }),
        )
        .await
    }

    /// `/query` that must succeed; returns the body.
    pub async fn ok(&self, token: &str, sql: &str) -> Value {
        let (s, v) = self.query(token, sql, serde_json::json!([])).await;
        assert_eq!(s, StatusCode::OK, "{sql}: {v}");
        v
    }
}

/// The error code of an error body.
pub fn code(v: &Value) -> &str {
    v.pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// POSTs `body` to `path` of `state`'s app with `token`.
pub async fn post_to(
    state: &Arc<AppState>,
    path: &str,
    token: &str,
    body: String,
) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let res = app(state.clone()).oneshot(req).await.expect("oneshot");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}
