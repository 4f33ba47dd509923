//! Test support: a real PostgreSQL 17 in a container (our image, started by `testkit`) behind a
//! real PgBouncer (our image, configured from the stack's own template, tenant logins found
//! through its auth_query), the role bootstrap, and a postgate `app()` driven with `oneshot`.
//! Every query of these tests goes through the pooler; only the admin path and LISTEN talk to
//! PostgreSQL directly.

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

pub const POOLER_IMAGE: &str = "stackctl/pgbouncer:1.24";
const POOLER_AUTH_PASSWORD: &str = "pooler-auth-secret-test";
pub const SUPER_PASSWORD: &str = "super-secret-test";
const SERVICE_PASSWORD: &str = "service-secret-test";
const CLI_PASSWORD: &str = "cli-secret-test";
pub const PEPPER: &[u8] = b"test-pepper-0123456789abcdef";

/// A PostgreSQL container (testkit's, alias `postgres` on its own network), and later a PgBouncer
/// container in front of it; all removed on drop (the pooler first, then the server and its
/// network).
pub struct Pg {
    server: testkit::Postgres,
    pooler: Option<(String, u16)>,
    _pooler_conf: Option<tempfile::TempDir>,
}

impl Pg {
    pub async fn start() -> Pg {
        let server = testkit::Postgres::start_async(&testkit::Options {
            name_prefix: "postgate-test",
            superuser: "postgres",
            password: SUPER_PASSWORD,
            database: None,
            network_alias: Some("postgres"),
            docker_args: &[],
            if_missing: testkit::IfMissing::Fail,
        })
        .await;
        Pg {
            server,
            pooler: None,
            _pooler_conf: None,
        }
    }

    pub fn url(&self, user: &str, password: &str) -> String {
        self.server.url_as(user, password)
    }

    /// `user` through the PgBouncer in front of this server.
    pub fn pooler_url(&self, user: &str, password: &str) -> String {
        let (_, port) = self.pooler.as_ref().expect("start_pooler first");
        format!("postgres://{user}:{password}@127.0.0.1:{port}/postgres")
    }

    /// Starts PgBouncer (our image) on this server's network, configured from the stack's own
    /// `pgbouncer.ini` template (transaction mode, auth_query through `pooler_auth`); its user list
    /// holds the verifier PostgreSQL stores for the service login `postgate` and the clear password
    /// of `pooler_auth`, as `stackctl render` writes it. Waits, with a deadline, until the service
    /// login gets through it.
    pub async fn start_pooler(&mut self) {
        const TEMPLATE: &str = include_str!("../../../../templates/pgbouncer/pgbouncer.ini.tera");
        let ini = TEMPLATE
            .replace("{{ database }}", "postgres")
            .replace("{{ pool_mode }}", "transaction")
            .replace("{{ pool_size }}", "20")
            .replace("{{ min_pool_size }}", "0")
            .replace("{{ max_client_conn }}", "500")
            .replace("{{ prepared_statements }}", "200");
        assert!(!ini.contains("{{") && !ini.contains("{%"), "{ini}");
        let su = self.superuser().await;
        let verifier: String = su
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgate'",
                &[],
            )
            .await
            .expect("the service login's verifier")
            .get(0);
        let userlist =
            format!("\"postgate\" \"{verifier}\"\n\"pooler_auth\" \"{POOLER_AUTH_PASSWORD}\"\n");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.path().join("userlist.txt"), userlist).unwrap();
        let name = format!("{}-pgbouncer", self.server.name);
        let mount = format!("{}:/etc/pgbouncer:ro", dir.path().display());
        testkit::docker(&[
            "run",
            "-d",
            "--rm",
            "--name",
            &name,
            "--network",
            self.server.network().expect("a network of its own"),
            "-p",
            "127.0.0.1::6432",
            "-v",
            &mount,
            POOLER_IMAGE,
        ]);
        let port = testkit::published_port(&name, "6432/tcp");
        self.pooler = Some((name, port));
        self._pooler_conf = Some(dir);
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = self.pooler_url("postgate", SERVICE_PASSWORD);
        loop {
            let attempt = async {
                let (c, conn) = tokio_postgres::connect(&url, NoTls).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                c.simple_query("SELECT 1").await
            };
            let err = match attempt.await {
                Ok(_) => break,
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "PgBouncer not ready in 60 s: {err}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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

    /// Connects through the pooler, or says why not.
    pub async fn try_pooler(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) =
            tokio_postgres::connect(&self.pooler_url(user, password), NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    pub async fn pooler_auth(&self) -> Client {
        self.connect("pooler_auth", POOLER_AUTH_PASSWORD).await
    }

    pub async fn superuser(&self) -> Client {
        self.connect("postgres", SUPER_PASSWORD).await
    }
}

impl Drop for Pg {
    /// The pooler goes first; the server and its network follow when `server` is dropped.
    fn drop(&mut self) {
        if let Some((name, _)) = &self.pooler {
            let _ = Command::new("docker").args(["rm", "-f", name]).output();
        }
    }
}

/// PgBouncer's auth_query function, exactly as the platform's role bootstrap defines it.
const POOLER_AUTH_SQL: &str = include_str!("../../../../src/db/pooler_auth.sql");

/// TEST-ONLY role bootstrap: the minimum of the platform's bootstrap that postgate needs (the
/// service login `postgate`, an admin login `postgate_cli` holding postgate_admin, the pooler's
/// `pooler_auth` and its lookup function), then postgate's platform migration (roles and schema),
/// as `stackctl migrate` applies it.
pub async fn test_role_bootstrap(su: &Client) {
    su.batch_execute(&format!(
        "CREATE ROLE postgate LOGIN NOINHERIT PASSWORD '{SERVICE_PASSWORD}';
         CREATE ROLE postgate_cli LOGIN PASSWORD '{CLI_PASSWORD}';
         CREATE ROLE pooler_auth LOGIN NOINHERIT PASSWORD '{POOLER_AUTH_PASSWORD}';"
    ))
    .await
    .expect("bootstrap logins");
    su.batch_execute(POOLER_AUTH_SQL)
        .await
        .expect("pooler_auth.sql");
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
    /// The service login through the pooler (what `postgate serve` gets as POSTGATE_DATABASE_URL).
    pub fn service_url(&self) -> String {
        self.pg.pooler_url("postgate", SERVICE_PASSWORD)
    }

    /// The service login straight to PostgreSQL (POSTGATE_LISTEN_DATABASE_URL).
    pub fn listen_url(&self) -> String {
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
        database_url: pg.pooler_url("postgate", SERVICE_PASSWORD),
        pepper: PEPPER.to_vec(),
        limits,
        parser_check,
        pool_size: 4,
    };
    let gateway = Gateway::new(settings)
        .expect("gateway")
        .with_listen_url(&pg.url("postgate", SERVICE_PASSWORD))
        .expect("listen url");
    let state = Arc::new(AppState {
        gateway,
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
        let mut pg = Pg::start().await;
        test_role_bootstrap(&pg.superuser().await).await;
        pg.start_pooler().await;
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

pub async fn raw_http(addr: &str, req: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// A `postgate serve` process (the real binary), killed on drop.
pub struct Process {
    child: std::process::Child,
    pub addr: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `postgate serve` through the pooler (LISTEN straight to PostgreSQL, as in the stack)
/// and waits, with a deadline, until /ready answers 200.
pub async fn spawn_serve(h: &Harness) -> Process {
    let addr = format!("127.0.0.1:{}", testkit::free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_postgate"))
        .arg("serve")
        .env("POSTGATE_LISTEN", &addr)
        .env("POSTGATE_DATABASE_URL", h.service_url())
        .env("POSTGATE_LISTEN_DATABASE_URL", h.listen_url())
        .env(
            "POSTGATE_TOKEN_PEPPER",
            std::str::from_utf8(PEPPER).unwrap(),
        )
        .env("POSTGATE_RATE_PER_TOKEN", "0")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawning postgate serve");
    let p = Process { child, addr };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ok = tokio::net::TcpStream::connect(&p.addr).await.is_ok()
            && raw_http(&p.addr, "GET /ready HTTP/1.0\r\nHost: x\r\n\r\n")
                .await
                .starts_with("HTTP/1.0 200");
        if ok {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "postgate serve on {} not ready in 30 s",
            p.addr
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
