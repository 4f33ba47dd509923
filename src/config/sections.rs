//! `stack.toml` as written on disk: its typed sections, each with its embedded defaults, so that
//! a missing file or a missing key still yields a complete configuration.
//!
//! Every section denies unknown keys; what the values may be is checked in `validate`.

use serde::{Deserialize, Serialize};

/// The connection pooler in front of PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PoolerKind {
    Pgcat,
    Pgbouncer,
}

impl PoolerKind {
    pub fn service_name(self) -> &'static str {
        match self {
            PoolerKind::Pgcat => "pgcat",
            PoolerKind::Pgbouncer => "pgbouncer",
        }
    }
}

/// `stack.toml` as written on disk. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StackFile {
    pub project: ProjectSection,
    pub domains: DomainsSection,
    pub postgres: PostgresSection,
    pub pooler: PoolerSection,
    pub postgate: PostgateSection,
    pub runner: RunnerSection,
    pub migrations: MigrationsSection,
    pub observability: ObservabilitySection,
    pub metrics: MetricsSection,
    pub backup: BackupSection,
    pub ports: PortsSection,
    pub swarm: SwarmSection,
    pub images: ImagesSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectSection {
    pub name: String,
    pub domain: String,
}

impl Default for ProjectSection {
    fn default() -> Self {
        Self {
            name: "stack".into(),
            domain: "localhost".into(),
        }
    }
}

/// Host names of the routed services; empty means `<service>.<project.domain>`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DomainsSection {
    pub postgate: String,
    pub runner: String,
    pub workers: String,
    pub grafana: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSection {
    pub database: String,
}

impl Default for PostgresSection {
    fn default() -> Self {
        Self {
            database: "app".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolerSection {
    pub kind: PoolerKind,
    pub pool_mode: PoolMode,
    pub pool_size: u32,
    pub min_pool_size: u32,
    pub max_client_conn: u32,
    /// Protocol-level prepared statements the pooler keeps per server connection (pgCat's
    /// `prepared_statements_cache_size`, PgBouncer's `max_prepared_statements`). 0 turns the
    /// cache off, and named prepared statements (most drivers' default) then fail through a
    /// transaction-mode pool.
    pub prepared_statements: u32,
}

impl Default for PoolerSection {
    fn default() -> Self {
        Self {
            kind: PoolerKind::Pgcat,
            pool_mode: PoolMode::Transaction,
            pool_size: 20,
            min_pool_size: 2,
            max_client_conn: 1000,
            prepared_statements: 500,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Transaction,
    Session,
}

/// postgate's limits (rendered into its container's environment as `POSTGATE_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgateSection {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// Most rows one statement may return; more rolls the transaction back.
    pub max_rows: u64,
    /// Largest JSON response, in bytes; more rolls the transaction back.
    pub max_response_bytes: u64,
    /// `SET LOCAL statement_timeout`, in milliseconds.
    pub statement_timeout_ms: u64,
    /// Most statements in one `/batch`.
    pub max_batch: u32,
    /// Requests per second per token and replica (burst of twice this); 0 = unlimited.
    pub rate_per_token: u32,
    /// Connections per pool (the service login's and each tenant login's).
    pub pool_size: u32,
}

impl Default for PostgateSection {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_rows: 10_000,
            max_response_bytes: 10 << 20,
            statement_timeout_ms: 10_000,
            max_batch: 100,
            rate_per_token: 100,
            pool_size: 16,
        }
    }
}

/// The worker runtime. The limits are each worker's defaults; `stackctl worker deploy`
/// overrides them per worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerSection {
    pub replicas: u32,
    /// CPU time per invocation (ms).
    pub cpu_ms: u32,
    /// Memory per worker runtime (MiB).
    pub memory_mb: u32,
    /// Wall time per invocation (ms).
    pub wall_ms: u32,
    /// Largest request body (bytes).
    pub max_body_bytes: u32,
    /// Invocations of one worker admitted at once per replica.
    pub concurrency: u32,
    /// Days a finished workflow instance is kept (then the runner deletes it).
    pub workflow_retention_days: u32,
}

impl Default for RunnerSection {
    fn default() -> Self {
        Self {
            replicas: 3,
            cpu_ms: 50,
            memory_mb: 64,
            wall_ms: 30_000,
            max_body_bytes: 1 << 20,
            concurrency: 256,
            workflow_retention_days: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationsSection {
    pub directory: String,
}

impl Default for MigrationsSection {
    fn default() -> Self {
        Self {
            directory: "db/migrations".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservabilitySection {
    pub enabled: bool,
    pub log_retention: String,
}

impl Default for ObservabilitySection {
    fn default() -> Self {
        Self {
            enabled: true,
            log_retention: "744h".into(),
        }
    }
}

/// Prometheus and its exporters, in the `observability` group (issue 19).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Prometheus, postgres_exporter and the pooler's exporter; false leaves them out.
    pub enabled: bool,
    /// How long Prometheus keeps samples (`--storage.tsdb.retention.time`), like `15d`.
    pub retention: String,
    /// How often every target is scraped, like `15s`.
    pub scrape_interval: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            retention: "15d".into(),
            scrape_interval: "15s".into(),
        }
    }
}

/// The one pgBackRest stanza of a stack (its name for a cluster and its repository contents):
/// the rendered pgbackrest.conf and Compose file and the `backup` module all use it.
pub const STANZA: &str = "main";

/// Continuous archiving and backups with pgBackRest (repository: the `backups` volume).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSection {
    /// Seconds after which PostgreSQL switches to a new WAL segment so it gets archived: the
    /// most committed work a total loss can cost.
    pub archive_timeout: u32,
    /// Full backups the repository keeps (pgBackRest `repo1-retention-full`); older ones, and
    /// the WAL only they need, are expired after each backup.
    pub retention_full: u32,
    /// When the `backup` service takes a full backup (cron, 5 fields, UTC).
    pub full_schedule: String,
    /// When it takes a differential one (what changed since the last full backup).
    pub diff_schedule: String,
}

impl Default for BackupSection {
    fn default() -> Self {
        Self {
            archive_timeout: 60,
            retention_full: 2,
            full_schedule: "0 3 * * 0".into(),
            diff_schedule: "0 3 * * 1-6".into(),
        }
    }
}

/// What only the `swarm` target (`render --target swarm`, `up --swarm`) uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwarmSection {
    /// postgate's replicas (the runner's are `[runner] replicas`); local and Dokploy run one.
    pub postgate_replicas: u32,
    /// Encrypt the stack's overlay network (IPsec between nodes; costs throughput).
    pub encrypted_network: bool,
    /// postgate's port on every node through the routing mesh; 0 = not published.
    pub postgate_port: u16,
    /// The runner's port on every node through the routing mesh; 0 = not published.
    pub runner_port: u16,
    /// An external overlay network Traefik watches (`dokploy-network` on Dokploy): the routed
    /// services join it and carry Traefik's labels under `deploy.labels`; empty = no Traefik.
    pub traefik_network: String,
    /// How a service's name resolves: `vip` (one virtual IP, IPVS load-balancing; Swarm's
    /// default) or `dnsrr` (every task's address, for kernels without IPVS; published ports are
    /// then bound on the task's own node only).
    pub endpoint_mode: String,
}

impl Default for SwarmSection {
    fn default() -> Self {
        Self {
            postgate_replicas: 2,
            encrypted_network: false,
            postgate_port: 0,
            runner_port: 0,
            traefik_network: String::new(),
            endpoint_mode: "vip".into(),
        }
    }
}

/// Loopback ports of the `local` target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortsSection {
    pub postgres: u16,
    pub pooler: u16,
    pub postgate: u16,
    pub grafana: u16,
    pub prometheus: u16,
}

impl Default for PortsSection {
    fn default() -> Self {
        Self {
            postgres: 5432,
            pooler: 6432,
            postgate: 8080,
            grafana: 3000,
            prometheus: 9090,
        }
    }
}

/// Every image, pinned to a tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesSection {
    pub postgres: String,
    pub pgbouncer: String,
    pub pgcat: String,
    pub stackctl: String,
    pub postgate: String,
    pub runner: String,
    pub prometheus: String,
    pub postgres_exporter: String,
    pub pgbouncer_exporter: String,
    pub loki: String,
    pub alloy: String,
    pub grafana: String,
}

impl Default for ImagesSection {
    fn default() -> Self {
        let v = env!("CARGO_PKG_VERSION");
        Self {
            postgres: "stackctl/postgres:17".into(),
            pgbouncer: "stackctl/pgbouncer:1.24".into(),
            pgcat: "ghcr.io/postgresml/pgcat:v1.2.0".into(),
            stackctl: format!("stackctl/stackctl:{v}"),
            postgate: format!("stackctl/postgate:{v}"),
            runner: format!("stackctl/runner:{v}"),
            prometheus: "stackctl/prometheus:2.53".into(),
            postgres_exporter: "stackctl/postgres-exporter:0.17".into(),
            pgbouncer_exporter: "stackctl/pgbouncer-exporter:0.10".into(),
            loki: "grafana/loki:3.7.0".into(),
            alloy: "grafana/alloy:v1.18.0".into(),
            grafana: "grafana/grafana:13.1.0".into(),
        }
    }
}
