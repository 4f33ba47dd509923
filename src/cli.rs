//! Command-line definitions (clap types only; no work happens here).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use protocol::admin::{GenTokenArgs, TenantAction, TokenAction};

pub use crate::backup::Kind as BackupKind;
use crate::config::PoolerKind;
use crate::render::Target;

#[derive(Debug, Parser)]
#[command(
    name = "stackctl",
    version,
    about = "Stand up and keep healthy a Postgres-centred stack on one host or on Dokploy"
)]
pub struct Cli {
    /// The stack directory (holds stack.toml and .env).
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or complete a stack: stack.toml, .env secrets, TLS, pooler and observability configs.
    Init(InitArgs),
    /// Render the Compose file (and the config files it mounts).
    Render(RenderArgs),
    /// Bring the stack up on the local Docker Engine and wait until it is healthy.
    Up(UpArgs),
    /// Remove the stack's containers and networks (volumes only with --volumes).
    Down(DownArgs),
    /// Show each service's state, health, image, ports and uptime.
    Status(StatusArgs),
    /// Show the services' logs, each line prefixed by its service.
    Logs(LogsArgs),
    /// Build the stack's own images (postgres, pgbouncer, stackctl, postgate, runner).
    Build(BuildArgs),
    /// Apply platform migrations, the role bootstrap and your migrations.
    Migrate(MigrateArgs),
    /// Back up the database now with pgBackRest (`backup list`: the backups and restorable window).
    Backup(BackupArgs),
    /// Restore the database to a point in time (or the latest) from its pgBackRest backups.
    Restore(RestoreArgs),
    /// Logical dumps of the database (pg_dump -Fc) and their restore, for moving data.
    Db(DbArgs),
    /// Deploy, list and remove JavaScript workers, and read their logs (acts on the running runner).
    Worker(WorkerArgs),
    /// The runner's durable queue: job counts and dead-letter retries.
    Queue(QueueArgs),
    /// Durable workflows' instances: list, status, start, pause, resume, terminate, restart, events.
    Workflow(WorkflowArgs),
    /// Copy a Supabase project's database (data, RLS policies, users) into the stack, verified.
    ImportSupabase(ImportSupabaseArgs),
    /// Manage postgate's tenants (runs `postgate tenant ...` in the stack).
    Tenant(TenantArgs),
    /// Manage postgate's tokens (runs `postgate token ...` in the stack).
    Token(TokenArgs),
    /// Alias of `token create --tenant TENANT --name NAME` (the form OpenWorkers users know).
    GenToken(GenTokenArgs),
    /// Tag and push our images to a registry, and point stack.toml [images] at them.
    Publish(PublishArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout.
    Man,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    /// What to back up: every file, or what changed since the last full (diff) or any (incr) backup.
    #[arg(long = "type", value_enum, default_value = "full")]
    pub kind: BackupKind,
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Every backup set (type, size, WAL range) and the window `restore --to` can reach.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The `backup` service's loop (run inside its container): backups on cron schedules.
    #[command(hide = true)]
    Schedule {
        /// When to take a full backup (cron, 5 fields, UTC).
        #[arg(long, value_name = "CRON")]
        full: String,
        /// When to take a differential backup (cron, 5 fields, UTC).
        #[arg(long, value_name = "CRON")]
        diff: String,
    },
    /// The `backup` service's health check: fails while its last scheduled backup has failed.
    #[command(hide = true)]
    Health,
    /// Restore the newest backup into a scratch container, start PostgreSQL on it, check it
    /// (pgBackRest verify, amcheck on every B-tree index, rows per table), then remove it.
    Verify {
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub action: DbAction,
}

#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// `pg_dump -Fc` of the stack's database into a file (written whole or not at all).
    Dump {
        /// Where to write it (default: dumps/<database>-<UTC time>.dump in the stack directory).
        #[arg(long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
        /// Only these schemas (repeatable).
        #[arg(long = "schema", value_name = "SCHEMA")]
        schemas: Vec<String>,
    },
    /// Restore a `pg_dump -Fc` file into the stack's database, in one transaction.
    Restore {
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
        /// Drop the dump's objects before recreating them (needs --yes).
        #[arg(long)]
        clean: bool,
        /// Confirm --clean.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to", "latest", "set"])))]
pub struct RestoreArgs {
    /// Recover to this moment: RFC 3339 (`2026-12-03T18:15:00Z`) or `YYYY-MM-DD HH:MM:SS` (UTC).
    #[arg(long, value_name = "TIMESTAMP")]
    pub to: Option<String>,
    /// Recover to the end of the archived WAL.
    #[arg(long)]
    pub latest: bool,
    /// Restore one backup set as it was when it ended (a label from `backup list`).
    #[arg(long, value_name = "LABEL")]
    pub set: Option<String>,
    /// Do it (without: print the plan, change nothing, exit non-zero).
    #[arg(long)]
    pub yes: bool,
    /// How long each service may take to become healthy again.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub wait_timeout: u64,
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    pub action: TenantAction,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Project name (Compose project; prefixes containers, networks, volumes).
    #[arg(long)]
    pub project: Option<String>,
    /// Base domain of the routed services.
    #[arg(long)]
    pub domain: Option<String>,
    /// Connection pooler.
    #[arg(long, value_enum)]
    pub pooler: Option<PoolerKind>,
    /// Replace these secrets (keys of .env) with new values, keeping a backup of the old .env.
    #[arg(long, num_args = 1.., value_name = "KEY")]
    pub rotate: Vec<String>,
    /// With `--rotate POSTGATE_TOKEN_PEPPER`: accept that every postgate token stops working.
    #[arg(long, requires = "rotate")]
    pub invalidate_tokens: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Where the Compose file will run.
    #[arg(long, value_enum, default_value = "dokploy")]
    pub target: Target,
    /// Output file (default: docker-compose.yml for local, dokploy/code/docker-compose.yml for dokploy).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Only these services (and what they depend on).
    pub services: Vec<String>,
    /// Leave out a group of services (observability, apps).
    #[arg(long, value_name = "GROUP")]
    pub without: Vec<String>,
    /// How long to wait for each service to become healthy.
    #[arg(long, default_value_t = 180, value_name = "SECS")]
    pub wait_timeout: u64,
    /// Run this Compose file instead of rendering the local target from stack.toml.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Deploy the swarm target to the engine's Swarm (`docker stack deploy`) and wait until
    /// every service has converged; see docs/swarm.md.
    #[arg(long, conflicts_with_all = ["services", "without", "file"])]
    pub swarm: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the stack's volumes (its data); the backup repository is kept.
    #[arg(long)]
    pub volumes: bool,
    /// With --volumes, also remove the backup repository (the `backups` volume); needs --yes.
    #[arg(long, requires = "volumes")]
    pub include_backups: bool,
    /// Confirms --include-backups.
    #[arg(long)]
    pub yes: bool,
    /// Remove the Swarm deployment (`docker stack rm`) instead of the local containers.
    #[arg(long)]
    pub swarm: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The Swarm deployment's services (replicas running or job completed) instead.
    #[arg(long, conflicts_with = "json")]
    pub swarm: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only these services.
    pub services: Vec<String>,
    /// Keep following new lines.
    #[arg(long, short)]
    pub follow: bool,
    /// Lines from the end of each log.
    #[arg(long, default_value = "100")]
    pub tail: String,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Only these images (default: postgres, pgbouncer, stackctl, postgate, runner).
    pub images: Vec<String>,
    /// Where to push: HOST[:PORT]/NAMESPACE, e.g. ghcr.io/acme or 127.0.0.1:5000/stack.
    #[arg(long, value_name = "HOST[:PORT]/NAMESPACE")]
    pub registry: String,
    /// Tag of every pushed image (default: each image's own tag in stack.toml [images]).
    #[arg(long)]
    pub tag: Option<String>,
    /// Replace a tag the registry already holds with different content.
    #[arg(long)]
    pub force: bool,
    /// Registry user (default: the credentials of the Docker config for the registry).
    #[arg(long, env = "STACKCTL_REGISTRY_USERNAME", value_name = "USER")]
    pub username: Option<String>,
    /// Read the password (or token) from stdin; without it, from STACKCTL_REGISTRY_PASSWORD.
    #[arg(long)]
    pub password_stdin: bool,
    /// Print the result as JSON (references, digests, layers pushed).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Only these images (postgres, pgbouncer, stackctl, postgate, runner).
    pub services: Vec<String>,
    /// Base image for the Dockerfiles.
    #[arg(long, default_value = "debian:trixie-slim")]
    pub base: String,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub action: Option<MigrateAction>,
    /// Run directly against this database instead of in the stack's migrate container. The user
    /// must be a superuser (the role bootstrap creates roles and sets passwords); the logins'
    /// passwords come from the stack's .env.
    #[arg(long, env = "STACKCTL_DATABASE_URL", global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Inside the migrate container: read the connection (PG*) and passwords from the environment.
    #[arg(long, hide = true, global = true)]
    pub from_env: bool,
    /// Print what would run and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long one migration may wait for a lock on a table before it fails.
    #[arg(long, default_value_t = 10, value_name = "SECS", global = true)]
    pub lock_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Show applied and pending migrations, with their checksums.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create the next versioned migration file (V<n>__NAME.sql) in the migrations directory.
    New {
        /// What the migration does, e.g. add_orders.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(subcommand)]
    pub action: WorkerAction,
}

#[derive(Debug, Subcommand)]
pub enum WorkerAction {
    /// Store a new version of a worker; every runner replica serves it within a second.
    Deploy(Box<DeployArgs>),
    /// The deployed workers.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a worker (its versions, schedule and secrets; its database token is revoked).
    Rm {
        /// The worker's name.
        name: String,
    },
    /// The worker's JSON log lines (console output and invocation errors) from every replica.
    Logs {
        /// The worker's name.
        name: String,
        /// Keep following new lines.
        #[arg(long, short)]
        follow: bool,
        /// Lines from the end of each replica's log to search.
        #[arg(long, default_value = "1000")]
        tail: String,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The worker's name: a-z, 0-9 and '-'; it answers at NAME.<workers domain>.
    pub name: String,
    /// The ES module (`export default { fetch, scheduled, queue }`).
    pub file: PathBuf,
    /// Also serve this host, `/path` prefix or `host/path` prefix (repeatable).
    #[arg(long, value_name = "HOST_OR_PATH")]
    pub route: Vec<String>,
    /// Run `scheduled()` on this cron expression (5 fields, or 6 with seconds first).
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// Time zone of --cron (IANA name).
    #[arg(long, default_value = "UTC", value_name = "TZ")]
    pub timezone: String,
    /// Consume this queue with `queue()` (repeatable).
    #[arg(long, value_name = "NAME")]
    pub queue: Vec<String>,
    /// A plain variable on `env` (repeatable).
    #[arg(long, value_name = "K=V")]
    pub var: Vec<String>,
    /// A durable workflow: `env.BINDING` starts and reads instances of the exported class
    /// ClassName (`export class ClassName extends WorkflowEntrypoint`), which names the workflow
    /// (repeatable; see docs/workflows.md).
    #[arg(long, value_name = "BINDING=ClassName")]
    pub workflow: Vec<String>,
    /// A secret on `env`: its value is read from the environment variable K, or else from a
    /// line of stdin; it is sealed at rest and never printed (repeatable).
    #[arg(long, value_name = "K")]
    pub secret: Vec<String>,
    /// Give the worker `env.DB` on this postgate tenant (made if missing) with its own token.
    #[arg(long, value_name = "TENANT")]
    pub db_tenant: Option<String>,
    /// The token's permissions (SELECT, INSERT, UPDATE, DELETE, DDL).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "SELECT,INSERT,UPDATE,DELETE",
        requires = "db_tenant"
    )]
    pub db_permissions: String,
    /// CPU time per invocation in ms (default: stack.toml [runner] cpu_ms).
    #[arg(long)]
    pub cpu_ms: Option<u32>,
    /// Memory of the worker's runtime in MiB (default: [runner] memory_mb).
    #[arg(long)]
    pub memory_mb: Option<u32>,
    /// Wall time per invocation in ms (default: [runner] wall_ms).
    #[arg(long)]
    pub wall_ms: Option<u32>,
    /// Largest request body in bytes (default: [runner] max_body_bytes).
    #[arg(long)]
    pub max_body_bytes: Option<u32>,
    /// Invocations admitted at once per replica (default: [runner] concurrency).
    #[arg(long)]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub action: QueueAction,
}

#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Jobs per queue and state (ready, scheduled, running, done, dead).
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make dead jobs ready again.
    RetryDead {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct WorkflowArgs {
    #[command(subcommand)]
    pub action: WorkflowAction,
}

#[derive(Debug, Subcommand)]
pub enum WorkflowAction {
    /// Instances, newest first.
    List {
        /// Only instances with this status (queued, running, paused, waiting, errored,
        /// terminated, complete).
        #[arg(long)]
        status: Option<String>,
        /// Only instances of this workflow (its class name).
        #[arg(long)]
        workflow: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One instance: status, params, output or error, and every step with its timings.
    Status {
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start an instance of workflow NAME (its class name); prints the instance id.
    Start {
        name: String,
        /// The instance's params, as JSON.
        #[arg(long, value_name = "JSON")]
        params: Option<String>,
        /// The instance id: an idempotency key (the same id again starts nothing).
        #[arg(long)]
        id: Option<String>,
    },
    /// Pause an instance (it stops at its next step; `resume` continues it).
    Pause { id: String },
    /// Resume a paused instance.
    Resume { id: String },
    /// Stop an instance for good.
    Terminate { id: String },
    /// Run an instance again from the start with the same params.
    Restart { id: String },
    /// Send an instance an event of TYPE (what `step.waitForEvent` waits for).
    SendEvent {
        id: String,
        #[arg(value_name = "TYPE")]
        event_type: String,
        /// The event's payload, as JSON.
        #[arg(long, value_name = "JSON")]
        payload: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ImportSupabaseArgs {
    /// The source database: the direct connection or the session pooler (port 5432), never the
    /// transaction pooler (6543). The user needs BYPASSRLS (Supabase's `postgres` has it).
    #[arg(
        long,
        env = "STACKCTL_IMPORT_FROM",
        value_name = "URL",
        required_unless_present = "dump",
        conflicts_with = "dump"
    )]
    pub from: Option<String>,
    /// Restore this pg_dump custom-format archive instead of dumping a source.
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    /// Import only these schemas (default: every schema Supabase does not manage).
    #[arg(long = "schema", value_name = "NAME")]
    pub schemas: Vec<String>,
    /// Parallel pg_restore jobs.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Print the preflight report and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave the rows of auth.users behind (foreign keys to it are then not carried).
    #[arg(long)]
    pub skip_auth_users: bool,
    /// Import without the objects that depend on extensions the target lacks (tables, columns,
    /// indexes, functions, and what depends on them), listing them as not carried; without it
    /// the preflight names them and refuses.
    #[arg(long)]
    pub leave_out_missing_extensions: bool,
    /// Drop the target's schemas that the import writes (and auth.users) first. Needs --yes.
    #[arg(long, requires = "yes")]
    pub clean: bool,
    /// Confirm --clean.
    #[arg(long)]
    pub yes: bool,
    /// The target, as a superuser URL (default: the stack's own postgres on its loopback port).
    /// It must have had `stackctl migrate` (the role bootstrap); logins' passwords come from .env.
    #[arg(long, env = "STACKCTL_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Print the preflight report and the verification as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for: `source <(stackctl completions bash)`.
    pub shell: clap_complete::Shell,
}
