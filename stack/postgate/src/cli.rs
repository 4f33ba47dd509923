//! clap definitions only.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "postgate", version, about = "SQL over HTTP with scoped tokens")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API (POSTGATE_LISTEN, POSTGATE_DATABASE_URL, POSTGATE_TOKEN_PEPPER).
    Serve(ServeArgs),
    /// GET /health on this host; exit 0 when healthy (for container healthchecks).
    Healthcheck {
        #[arg(long, env = "POSTGATE_LISTEN", default_value = "0.0.0.0:8080")]
        listen: String,
    },
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Alias of `token create --tenant TENANT --name NAME` (the form OpenWorkers users know).
    GenToken {
        tenant: String,
        name: String,
        #[arg(long)]
        permissions: String,
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(long, env = "POSTGATE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,
    #[arg(long, env = "POSTGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The service login straight to PostgreSQL, for LISTEN (needed when POSTGATE_DATABASE_URL
    /// goes through a transaction-mode pooler); default: POSTGATE_DATABASE_URL.
    #[arg(long, env = "POSTGATE_LISTEN_DATABASE_URL", hide_env_values = true)]
    pub listen_database_url: Option<String>,
    #[arg(long, env = "POSTGATE_TOKEN_PEPPER", hide_env_values = true)]
    pub pepper: String,
    /// The pg_query check; `false` leaves PostgreSQL as the only wall (tests prove it holds).
    #[arg(long, env = "POSTGATE_PARSER_CHECK", default_value_t = true, action = clap::ArgAction::Set)]
    pub parser_check: bool,
    #[arg(long, env = "POSTGATE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    #[arg(long, env = "POSTGATE_MAX_ROWS", default_value_t = 10_000)]
    pub max_rows: usize,
    #[arg(long, env = "POSTGATE_MAX_RESPONSE_BYTES", default_value_t = 10 << 20)]
    pub max_response_bytes: usize,
    #[arg(long, env = "POSTGATE_STATEMENT_TIMEOUT_MS", default_value_t = 10_000)]
    pub statement_timeout_ms: u64,
    #[arg(long, env = "POSTGATE_MAX_BATCH", default_value_t = 100)]
    pub max_batch: usize,
    /// Requests per second per token (burst of twice this); 0 = unlimited.
    #[arg(long, env = "POSTGATE_RATE_PER_TOKEN", default_value_t = 100)]
    pub rate_per_token: u32,
    #[arg(long, env = "POSTGATE_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,
}

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// A login holding postgate_admin (falls back to POSTGATE_DATABASE_URL).
    #[arg(long, env = "POSTGATE_ADMIN_DATABASE_URL", hide_env_values = true)]
    pub admin_database_url: Option<String>,
    #[arg(long, env = "POSTGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[arg(long, env = "POSTGATE_TOKEN_PEPPER", hide_env_values = true)]
    pub pepper: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant: its schema and NOLOGIN roles.
    Create {
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List tenants (name, creation time).
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print it once.
    Create {
        #[arg(long)]
        tenant: String,
        /// SELECT[,INSERT,UPDATE,DELETE,DDL]
        #[arg(long)]
        permissions: String,
        /// Unique within the tenant. Default: `default`, or the first free of `default-2`,
        /// `default-3`, ... (the name used is printed on stderr).
        #[arg(long)]
        name: Option<String>,
        /// 30d, 12h, 15m, 45s, 2w
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List tokens (prefix, name, permissions, last use, expiry).
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Revoke a token by id or prefix.
    Revoke {
        id_or_prefix: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}
