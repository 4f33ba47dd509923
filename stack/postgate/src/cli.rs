//! clap definitions only. The admin requests (`tenant`, `token`, `gen-token`) are
//! `protocol::admin`'s types, which stackctl embeds in its own CLI and turns back into the argv
//! parsed here.

use clap::{Args, Parser, Subcommand};
pub use protocol::admin::{GenTokenArgs, TenantAction, TokenAction};

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
        command: TenantAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Manage tokens.
    Token {
        #[command(subcommand)]
        command: TokenAction,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Alias of `token create --tenant TENANT --name NAME` (the form OpenWorkers users know).
    GenToken {
        #[command(flatten)]
        args: GenTokenArgs,
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
    /// Seconds to wait at start for PostgreSQL and postgate's tables (Swarm starts every service
    /// at once); 0 = do not wait.
    #[arg(long, env = "POSTGATE_DB_WAIT_SECS", default_value_t = 180)]
    pub db_wait_secs: u64,
}

/// Where the admin commands connect. Global: given before or after the request's own arguments,
/// and listed apart from them in the help.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// A login holding postgate_admin (falls back to POSTGATE_DATABASE_URL).
    #[arg(
        long,
        env = "POSTGATE_ADMIN_DATABASE_URL",
        hide_env_values = true,
        global = true,
        help_heading = "Connection"
    )]
    pub admin_database_url: Option<String>,
    #[arg(
        long,
        env = "POSTGATE_DATABASE_URL",
        hide_env_values = true,
        global = true,
        help_heading = "Connection"
    )]
    pub database_url: Option<String>,
    #[arg(
        long,
        env = "POSTGATE_TOKEN_PEPPER",
        hide_env_values = true,
        global = true,
        help_heading = "Connection"
    )]
    pub pepper: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request after `postgate`: what stackctl's `to_args()` must make this CLI parse back.
    fn parsed(args: Vec<String>) -> Command {
        let argv = std::iter::once("postgate".to_string()).chain(args);
        Cli::try_parse_from(argv)
            .expect("postgate parses it")
            .command
    }

    #[test]
    fn stackctl_requests_parse_back_as_they_were() {
        for t in [
            TenantAction::Create {
                name: "acme".into(),
            },
            TenantAction::List,
        ] {
            match parsed(t.to_args()) {
                Command::Tenant { command, .. } => assert_eq!(command, t),
                other => panic!("{other:?}"),
            }
        }
        for t in [
            TokenAction::Create {
                tenant: "acme".into(),
                permissions: "SELECT,INSERT".into(),
                name: Some("n".into()),
                expires: Some("30d".into()),
            },
            TokenAction::Create {
                tenant: "acme".into(),
                permissions: "SELECT".into(),
                name: None,
                expires: None,
            },
            TokenAction::List { tenant: None },
            TokenAction::List {
                tenant: Some("acme".into()),
            },
            TokenAction::Revoke {
                id_or_prefix: "pg_abc".into(),
            },
        ] {
            match parsed(t.to_args()) {
                Command::Token { command, .. } => assert_eq!(command, t),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn admin_flags_go_before_or_after_the_request() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for args in [
            argv(&["token", "list", "--database-url", "u"]),
            argv(&["token", "--database-url", "u", "list"]),
        ] {
            match parsed(args) {
                Command::Token { admin, .. } => {
                    assert_eq!(admin.database_url.as_deref(), Some("u"))
                }
                other => panic!("{other:?}"),
            }
        }
        match parsed(argv(&[
            "gen-token",
            "acme",
            "w",
            "--permissions",
            "SELECT",
            "--pepper",
            "p",
        ])) {
            Command::GenToken { args, admin } => {
                assert_eq!(args.name, "w");
                assert_eq!(admin.pepper.as_deref(), Some("p"));
            }
            other => panic!("{other:?}"),
        }
    }
}
