//! The `runner` binary: parse arguments, call one function, one exit point.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use protocol::exit::AdminExit;
use tokio_util::sync::CancellationToken;

use runner::queue::{self, NoopHandler};
use runner::serve::{self, Settings};

#[derive(Parser)]
#[command(
    name = "runner",
    about = "stackctl runner: JavaScript workers, cron and a Postgres queue"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Db {
    /// PostgreSQL connection string (the `runner` login role).
    #[arg(long, env = "RUNNER_DATABASE_URL")]
    database_url: String,
}

#[derive(clap::Args, Clone)]
struct Tuning {
    /// Replica id used in leases and fired ticks (default: host name + random suffix).
    #[arg(long, env = "RUNNER_ID")]
    id: Option<String>,
    /// Jobs claimed per batch.
    #[arg(long, env = "RUNNER_BATCH", default_value_t = 100)]
    batch: i64,
    /// Lease length in seconds; renewed by heartbeat every third of it.
    #[arg(long, env = "RUNNER_LEASE_SECS", default_value_t = 30.0)]
    lease_secs: f64,
    /// Polling fallback interval in seconds (LISTEN/NOTIFY wakes consumers sooner).
    #[arg(long, env = "RUNNER_POLL_SECS", default_value_t = 1.0)]
    poll_secs: f64,
    /// Shutdown grace period in seconds for in-flight work.
    #[arg(long, env = "RUNNER_GRACE_SECS", default_value_t = 20.0)]
    grace_secs: f64,
}

/// Worker defaults (stack.toml `[runner]`), used where a worker sets none.
#[derive(clap::Args, Clone)]
struct Defaults {
    /// CPU time per invocation, in milliseconds.
    #[arg(long, env = "RUNNER_CPU_MS", default_value_t = 50)]
    cpu_ms: u64,
    /// Memory per worker runtime, in MiB.
    #[arg(long, env = "RUNNER_MEMORY_MB", default_value_t = 64)]
    memory_mb: u64,
    /// Wall time per invocation, in milliseconds.
    #[arg(long, env = "RUNNER_WALL_MS", default_value_t = 30_000)]
    wall_ms: u64,
    /// Largest request body, in bytes.
    #[arg(long, env = "RUNNER_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Invocations of one worker admitted at once per replica (queued or running).
    #[arg(long, env = "RUNNER_CONCURRENCY", default_value_t = runner::js::MAX_INFLIGHT)]
    concurrency: usize,
}

/// Keys for secrets and env.DB. Values are never printed (`hide_env_values`).
#[derive(clap::Args, Clone)]
struct Keys {
    /// 32 bytes, hex: seals worker secrets at rest.
    #[arg(long, env = "RUNNER_SECRETS_KEY", hide_env_values = true)]
    secrets_key: Option<String>,
    /// Earlier RUNNER_SECRETS_KEY values (comma-separated, newest first): secrets sealed with
    /// them still open, and `serve` seals them again under the current key.
    #[arg(long, env = "RUNNER_SECRETS_KEY_PREVIOUS", hide_env_values = true)]
    secrets_key_previous: Option<String>,
    /// postgate's token pepper: env.DB verifies worker tokens with it.
    #[arg(long, env = "POSTGATE_TOKEN_PEPPER", hide_env_values = true)]
    postgate_pepper: Option<String>,
    /// The login postgate's library reads tokens with (default: RUNNER_DATABASE_URL); tenant
    /// logins connect to the same host and database.
    #[arg(long, env = "POSTGATE_DATABASE_URL", hide_env_values = true)]
    postgate_database_url: Option<String>,
}

impl Keys {
    fn secrets_key(&self) -> anyhow::Result<Option<runner::secrets::SecretsKey>> {
        let previous = self.secrets_key_previous.as_deref().unwrap_or("");
        self.secrets_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| runner::secrets::SecretsKey::from_hex(k)?.with_previous(previous))
            .transpose()
            .map_err(Into::into)
    }

    fn pepper(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.postgate_pepper
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|p| postgate::config::check_pepper(p).map_err(|e| anyhow::anyhow!(e)))
            .transpose()
    }
}

#[derive(Subcommand)]
enum WorkerCmd {
    /// Deploy a worker from a JSON manifest on stdin (what `stackctl worker deploy` sends).
    Deploy {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        keys: Keys,
    },
    /// The deployed workers.
    List {
        #[command(flatten)]
        db: Db,
        #[arg(long)]
        json: bool,
    },
    /// Remove a worker (its versions, schedule and secrets; its tokens are revoked).
    Rm {
        #[command(flatten)]
        db: Db,
        name: String,
    },
}

// Parsed once at start-up: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Serve HTTP, run queue consumers and cron until SIGTERM.
    Serve {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        tuning: Tuning,
        #[arg(long, env = "RUNNER_LISTEN", default_value = "0.0.0.0:8080")]
        listen: String,
        /// `NAME.workers.DOMAIN` routes to worker NAME.
        #[arg(long, env = "RUNNER_WORKERS_DOMAIN")]
        workers_domain: Option<String>,
        /// Addresses workers may fetch although they are private/loopback (comma-separated IPs).
        #[arg(long, env = "RUNNER_FETCH_ALLOW", value_delimiter = ',')]
        fetch_allow: Vec<std::net::IpAddr>,
        /// Do not fire cron schedules from this replica.
        #[arg(long, env = "RUNNER_NO_CRON")]
        no_cron: bool,
        /// PEM file of CA certificates `fetch` trusts beside Mozilla's roots (an egress proxy's).
        #[arg(long, env = "RUNNER_FETCH_CA_FILE")]
        fetch_ca_file: Option<std::path::PathBuf>,
        /// Bearer token of the workflows HTTP API (`/workflows/...`); unset: the API is off.
        #[arg(long, env = "RUNNER_WORKFLOWS_TOKEN", hide_env_values = true)]
        workflows_token: Option<String>,
        /// Days a finished workflow instance (complete, errored, terminated) is kept before it is
        /// deleted with its steps, events and history (fractions allowed).
        #[arg(long, env = "RUNNER_WORKFLOW_RETENTION_DAYS", default_value_t = runner::workflow::retention::DEFAULT_DAYS)]
        workflow_retention_days: f64,
        /// Seconds to wait at start for PostgreSQL and the runner's tables (Swarm starts every
        /// service at once); 0 = do not wait.
        #[arg(long, env = "RUNNER_DB_WAIT_SECS", default_value_t = 180)]
        db_wait_secs: u64,
        #[command(flatten)]
        defaults: Defaults,
        #[command(flatten)]
        keys: Keys,
    },
    /// Worker admin: deploy, list, rm.
    Worker {
        #[command(subcommand)]
        cmd: WorkerCmd,
    },
    /// GET /health on this machine; exit 0 when it answers 200 (the container healthcheck).
    Healthcheck {
        #[arg(long, env = "RUNNER_LISTEN", default_value = "0.0.0.0:8080")]
        listen: String,
    },
    /// Apply the runner's schema (development and tests; production uses the platform migrations).
    Migrate {
        #[command(flatten)]
        db: Db,
    },
    /// Queue tools.
    Queue {
        #[command(subcommand)]
        cmd: QueueCmd,
    },
    /// Workflow instances: list, status, start, pause, resume, terminate, restart, send-event.
    Workflow {
        #[command(flatten)]
        db: Db,
        #[command(subcommand)]
        cmd: WorkflowCmd,
    },
}

#[derive(Subcommand)]
enum WorkflowCmd {
    /// Instances, newest first.
    List {
        /// Only instances with this status.
        #[arg(long)]
        status: Option<String>,
        /// Only instances of this workflow (class name).
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One instance with its steps.
    Status {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Start an instance of workflow NAME (the class); prints its id.
    Start {
        name: String,
        /// The instance's params (JSON).
        #[arg(long)]
        params: Option<String>,
        /// The instance id (an idempotency key: the same id again starts nothing).
        #[arg(long)]
        id: Option<String>,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Terminate {
        id: String,
    },
    /// Run the instance again from the start with the same params.
    Restart {
        id: String,
    },
    /// Send the instance an event of TYPE.
    SendEvent {
        id: String,
        #[arg(name = "TYPE")]
        ty: String,
        /// The event's payload (JSON).
        #[arg(long)]
        payload: Option<String>,
    },
}

#[derive(Subcommand)]
enum QueueCmd {
    /// Jobs per queue and state.
    Stats {
        #[command(flatten)]
        db: Db,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make dead jobs ready again.
    RetryDead {
        #[command(flatten)]
        db: Db,
        #[arg(long)]
        queue: Option<String>,
    },
    /// Consume one queue with a built-in no-op handler (tests and benchmarks).
    Work {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        tuning: Tuning,
        #[arg(long)]
        queue: String,
        /// Time each job takes, in microseconds.
        #[arg(long, default_value_t = 0)]
        job_us: u64,
    },
}

fn main() -> ExitCode {
    let cli = protocol::secret_env::parse::<Cli>();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(db: &Db, t: &Tuning) -> anyhow::Result<Settings> {
    let secs = |what: &str, v: f64| {
        Duration::try_from_secs_f64(v)
            .with_context(|| format!("{what} must be a positive number of seconds"))
    };
    let owner = t.id.clone().unwrap_or_else(default_id);
    let mut s = Settings::new(db.database_url.clone(), owner);
    anyhow::ensure!(t.batch > 0, "--batch must be positive");
    s.batch = t.batch;
    s.lease = secs("--lease-secs", t.lease_secs)?;
    anyhow::ensure!(!s.lease.is_zero(), "--lease-secs must be positive");
    s.heartbeat = s.lease / 3;
    s.poll = secs("--poll-secs", t.poll_secs)?;
    s.grace = secs("--grace-secs", t.grace_secs)?;
    Ok(s)
}

fn default_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "runner".into());
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Cancel the token on SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        runner::log::info("shutdown requested", serde_json::json!({}));
        t.cancel();
    });
    token
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Serve {
            db,
            tuning,
            listen,
            workers_domain,
            fetch_allow,
            no_cron,
            fetch_ca_file,
            workflows_token,
            workflow_retention_days,
            db_wait_secs,
            defaults,
            keys,
        } => {
            // Only the long-running service logs library events: the admin commands' stdout is
            // their answer (JSON that stackctl parses).
            runner::log::install_tracing();
            if db_wait_secs > 0 {
                // The newest platform migration's table: the schema this build needs is in.
                postgate::wait::until_ready(
                    "runner",
                    &db.database_url,
                    "runner.workflow_history",
                    Duration::from_secs(db_wait_secs),
                )
                .await?;
            }
            let mut s = settings(&db, &tuning)?;
            s.workers_domain = workers_domain.filter(|d| !d.is_empty());
            s.cron = !no_cron;
            s.fetch.allow = fetch_allow;
            s.workflows_token = runner::workflow::http::Token::new(workflows_token.as_deref());
            s.workflow_retention = Duration::try_from_secs_f64(workflow_retention_days * 86_400.0)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| {
                    format!(
                        "RUNNER_WORKFLOW_RETENTION_DAYS is {workflow_retention_days}; it must be \
                         a positive number of days"
                    )
                })?;
            if let Some(path) = fetch_ca_file.filter(|p| !p.as_os_str().is_empty()) {
                let pem = std::fs::read(&path)
                    .with_context(|| format!("reading RUNNER_FETCH_CA_FILE {}", path.display()))?;
                s.fetch.tls =
                    Some(runner::fetch::tls_config_with(&pem).map_err(|e| anyhow::anyhow!(e))?);
            }
            s.limits = runner::registry::Limits {
                cpu_ms: defaults.cpu_ms.max(1),
                memory_mb: defaults.memory_mb.max(1),
                wall: Duration::from_millis(defaults.wall_ms.max(1)),
                body_bytes: defaults.max_body_bytes,
                concurrency: defaults.concurrency.max(1),
            };
            s.secrets_key = keys.secrets_key()?;
            if let Some(pepper) = keys.pepper()? {
                s.postgate = Some(postgate::Settings {
                    database_url: keys
                        .postgate_database_url
                        .clone()
                        .filter(|u| !u.is_empty())
                        .unwrap_or_else(|| db.database_url.clone()),
                    pepper,
                    limits: postgate::Limits::default(),
                    parser_check: true,
                    pool_size: 4,
                });
            }
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            serve::run(listener, s, shutdown_on_signal()).await?;
        }
        Cmd::Healthcheck { listen } => {
            let port = listen.rsplit(':').next().unwrap_or("8080");
            return Ok(if healthcheck(port).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Cmd::Worker { cmd } => return worker(cmd).await,
        Cmd::Workflow { db, cmd } => return workflow(db, cmd).await,
        Cmd::Migrate { db } => {
            let mut c = connect(&db.database_url).await?;
            runner::sql::apply(&mut c).await?;
            println!("runner schema applied");
        }
        Cmd::Queue { cmd } => match cmd {
            QueueCmd::Stats { db, json } => {
                let c = connect(&db.database_url).await?;
                let stats = queue::stats(&c).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&stats)?);
                } else {
                    print!("{}", queue::render_stats(&stats));
                }
            }
            QueueCmd::RetryDead { db, queue } => {
                let c = connect(&db.database_url).await?;
                let n = queue::retry_dead(&c, queue.as_deref()).await?;
                println!("{n} dead jobs made ready again");
            }
            QueueCmd::Work {
                db,
                tuning,
                queue,
                job_us,
            } => {
                let s = settings(&db, &tuning)?;
                let pool = runner::db::pool(&s.database_url, 4)?;
                let bus = runner::notify::Bus::new();
                let shutdown = shutdown_on_signal();
                let wake = bus.jobs.for_queue(&queue);
                let listen = tokio::spawn(runner::notify::listen(
                    s.database_url.clone(),
                    bus.clone(),
                    shutdown.clone(),
                ));
                runner::log::info(
                    "consuming",
                    serde_json::json!({"queue": queue, "owner": s.owner}),
                );
                queue::run_consumer(
                    pool,
                    s.consumer(&queue),
                    Arc::new(NoopHandler {
                        per_job: Duration::from_micros(job_us),
                    }),
                    wake,
                    Arc::new(runner::metrics::Metrics::default()),
                    shutdown,
                )
                .await;
                let _ = listen.await;
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

async fn worker(cmd: WorkerCmd) -> anyhow::Result<ExitCode> {
    use runner::admin;
    match cmd {
        WorkerCmd::Deploy { db, keys } => {
            // One JSON line: no need to wait for the end of stdin.
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the manifest from stdin")?;
            let m =
                admin::Manifest::from_line(&line).context("the manifest on stdin is not valid")?;
            let mut c = connect(&db.database_url).await?;
            let key = keys.secrets_key()?;
            let pepper = keys.pepper()?;
            match admin::deploy(&mut c, &m, key.as_ref(), pepper.as_deref()).await {
                Ok(d) => println!("{}", serde_json::to_string(&d)?),
                Err(admin::AdminError::Invalid(msg)) => {
                    eprintln!("error: {msg}");
                    return Ok(ExitCode::from(AdminExit::Refused.code()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        WorkerCmd::List { db, json } => {
            let c = connect(&db.database_url).await?;
            let rows = admin::list(&c).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", admin::render_list(&rows));
            }
        }
        WorkerCmd::Rm { db, name } => {
            let mut c = connect(&db.database_url).await?;
            if !admin::remove(&mut c, &name).await? {
                eprintln!("error: no worker named {name} is deployed");
                return Ok(ExitCode::from(AdminExit::NotFound.code()));
            }
            println!("worker {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn workflow(db: Db, cmd: WorkflowCmd) -> anyhow::Result<ExitCode> {
    use runner::workflow::admin;
    use runner::workflow::api::{self, ApiError};
    let pool = runner::db::pool(&db.database_url, 1)?;
    let pool = &pool;
    let done: Result<String, ApiError> = async {
        Ok(match cmd {
            WorkflowCmd::List {
                status,
                workflow,
                limit,
                json,
            } => {
                let rows = admin::list(pool, status.as_deref(), workflow.as_deref(), limit).await?;
                if json {
                    format!("{}\n", serde_json::Value::Array(rows))
                } else {
                    admin::render_list(&rows)
                }
            }
            WorkflowCmd::Status { id, json } => {
                let v = api::status(pool, None, &id).await?;
                if json {
                    format!("{v:#}\n")
                } else {
                    admin::render_status(&v)
                }
            }
            WorkflowCmd::Start { name, params, id } => {
                let params = admin::json_arg("--params", params.as_deref())?;
                format!(
                    "{}\n",
                    api::create(pool, &name, id.as_deref(), &params).await?
                )
            }
            WorkflowCmd::Pause { id } => control(pool, &id, "pause").await?,
            WorkflowCmd::Resume { id } => control(pool, &id, "resume").await?,
            WorkflowCmd::Terminate { id } => control(pool, &id, "terminate").await?,
            WorkflowCmd::Restart { id } => control(pool, &id, "restart").await?,
            WorkflowCmd::SendEvent { id, ty, payload } => {
                let payload = admin::json_arg("--payload", payload.as_deref())?;
                let event = api::send_event(pool, &id, &ty, &payload).await?;
                format!("event {event} ({ty}) sent to workflow instance {id}\n")
            }
        })
    }
    .await;
    async fn control(
        pool: &deadpool_postgres::Pool,
        id: &str,
        action: &str,
    ) -> Result<String, ApiError> {
        let v = api::control(pool, id, action).await?;
        Ok(format!(
            "workflow instance {id} is {}\n",
            v["status"].as_str().unwrap_or("?")
        ))
    }
    match done {
        Ok(out) => {
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Err(ApiError::Bad(msg)) => {
            eprintln!("error: {msg}");
            Ok(ExitCode::from(AdminExit::Refused.code()))
        }
        Err(e @ ApiError::NotFound(_)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(AdminExit::NotFound.code()))
        }
        Err(e) => Err(e.into()),
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to the database")?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            runner::log::error("database connection", &e);
        }
    });
    Ok(client)
}

/// GET /health on 127.0.0.1:PORT with a plain HTTP/1.0 request and a 3 s deadline.
async fn healthcheck(port: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        Some(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Some(true))
    )
}
