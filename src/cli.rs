//! Command-line definitions (clap types only; no work happens here).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Manage postgate's tenants (runs `postgate tenant ...` in the stack).
    Tenant(TenantArgs),
    /// Manage postgate's tokens (runs `postgate token ...` in the stack).
    Token(TokenArgs),
    /// Alias of `token create --tenant TENANT --name NAME` (the form OpenWorkers users know).
    GenToken(GenTokenArgs),
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    pub action: TenantAction,
}

#[derive(Debug, Subcommand)]
pub enum TenantAction {
    /// Create a tenant: a schema and its NOLOGIN roles.
    Create {
        /// 1-31 characters a-z, 0-9, _ starting with a letter.
        name: String,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token for a tenant and print it once.
    Create {
        #[arg(long)]
        tenant: String,
        /// SELECT[,INSERT,UPDATE,DELETE,DDL]
        #[arg(long)]
        permissions: String,
        #[arg(long, default_value = "default")]
        name: String,
        /// Lifetime: 30d, 12h, 15m, 45s, 2w.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (prefix, name, permissions, last use, expiry).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a token by id or prefix (every replica stops accepting it within a second).
    Revoke { id_or_prefix: String },
}

#[derive(Debug, Args)]
pub struct GenTokenArgs {
    pub tenant: String,
    pub name: String,
    /// SELECT[,INSERT,UPDATE,DELETE,DDL]
    #[arg(long)]
    pub permissions: String,
    /// Lifetime: 30d, 12h, 15m, 45s, 2w.
    #[arg(long)]
    pub expires: Option<String>,
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
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the stack's volumes (its data).
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
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
