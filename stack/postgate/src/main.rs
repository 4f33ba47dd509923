//! `postgate`: parse arguments, run one command, print the error chain once.

mod cli;

use anyhow::{Context as _, Result, anyhow, bail};
use cli::{AdminArgs, Cli, Command, ServeArgs, TenantAction, TokenAction};
use postgate::http::{AppState, Metrics};
use postgate::token::{self, Permissions};
use postgate::{Gateway, Limits, Settings, admin};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(protocol::secret_env::parse::<Cli>().command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await?,
        Command::Healthcheck { listen } => return Ok(healthcheck(&listen).await),
        Command::Tenant { command, admin } => match command {
            TenantAction::Create { name } => {
                let (client, _) = connect(&admin).await?;
                match admin::create_tenant(&client, &name).await? {
                    admin::TenantCreated::New => println!("tenant {name} created"),
                    admin::TenantCreated::AlreadyExisted => {
                        println!("tenant {name} already exists (left as it is)")
                    }
                }
            }
            TenantAction::List => {
                let (client, _) = connect(&admin).await?;
                for (name, created) in admin::list_tenants(&client).await? {
                    println!("{name}\tcreated: {created}");
                }
            }
        },
        Command::Token { command, admin } => match command {
            TokenAction::Create {
                tenant,
                permissions,
                name,
                expires,
            } => {
                create_token(
                    &admin,
                    &tenant,
                    name.as_deref(),
                    &permissions,
                    expires.as_deref(),
                )
                .await?
            }
            TokenAction::List { tenant } => {
                let (client, _) = connect(&admin).await?;
                for row in admin::list_tokens(&client, tenant.as_deref()).await? {
                    println!("{row}");
                }
            }
            TokenAction::Revoke { id_or_prefix } => {
                let (client, _) = connect(&admin).await?;
                let n = admin::revoke_token(&client, &id_or_prefix).await?;
                println!("{n} token(s) revoked");
            }
        },
        Command::GenToken { args, admin } => {
            create_token(
                &admin,
                &args.tenant,
                Some(&args.name),
                &args.permissions,
                args.expires.as_deref(),
            )
            .await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_token(
    args: &AdminArgs,
    tenant: &str,
    name: Option<&str>,
    permissions: &str,
    expires: Option<&str>,
) -> Result<()> {
    let permissions = Permissions::parse(permissions)?;
    let expires = expires
        .map(|e| {
            token::parse_duration(e)
                .ok_or_else(|| anyhow!("--expires {e:?}: use e.g. 30d, 12h, 15m"))
        })
        .transpose()?;
    let (mut client, pepper) = connect(args).await?;
    let new = match name {
        Some(name) => {
            admin::create_token(&mut client, &pepper, tenant, name, permissions, expires).await?
        }
        None => {
            admin::create_unnamed_token(&mut client, &pepper, tenant, permissions, expires).await?
        }
    };
    let chosen = if name.is_none() {
        " (no --name given: the first free default name)"
    } else {
        ""
    };
    eprintln!(
        "token {} named `{}`{chosen} for tenant {tenant} ({permissions}); shown once, store it now:",
        new.id, new.name
    );
    println!("{}", new.secret);
    Ok(())
}

/// The admin connection and the pepper.
async fn connect(args: &AdminArgs) -> Result<(tokio_postgres::Client, Vec<u8>)> {
    let url = args
        .admin_database_url
        .as_deref()
        .or(args.database_url.as_deref())
        .context("set POSTGATE_ADMIN_DATABASE_URL (a login holding postgate_admin)")?;
    let pepper = postgate::config::check_pepper(
        args.pepper
            .as_deref()
            .context("set POSTGATE_TOKEN_PEPPER")?,
    )
    .map_err(|e| anyhow!(e))?;
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to the database")?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::error!("database connection: {e}");
        }
    });
    admin::become_admin(&client)
        .await
        .context("taking the postgate_admin role")?;
    Ok((client, pepper))
}

async fn serve(args: ServeArgs) -> Result<()> {
    let pepper = postgate::config::check_pepper(&args.pepper).map_err(|e| anyhow!(e))?;
    if !args.parser_check {
        tracing::warn!("the pg_query check is off: PostgreSQL privileges are the only wall");
    }
    if args.db_wait_secs > 0 {
        postgate::wait::until_ready(
            "postgate",
            &args.database_url,
            "postgate.tokens",
            Duration::from_secs(args.db_wait_secs),
        )
        .await?;
    }
    let settings = Settings {
        database_url: args.database_url,
        pepper,
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_rows: args.max_rows,
            max_response_bytes: args.max_response_bytes,
            statement_timeout: Duration::from_millis(args.statement_timeout_ms),
            max_batch: args.max_batch,
            rate_per_token: args.rate_per_token,
        },
        parser_check: args.parser_check,
        pool_size: args.pool_size,
    };
    let mut gateway = Gateway::new(settings).context("configuring the database pools")?;
    if let Some(url) = args
        .listen_database_url
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        gateway = gateway
            .with_listen_url(url)
            .context("POSTGATE_LISTEN_DATABASE_URL")?;
    }
    let state = Arc::new(AppState {
        gateway,
        metrics: Metrics::new().context("registering metrics")?,
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!("postgate listening on {}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal.cancel();
    });
    let background = tokio::spawn(state.gateway.background(shutdown.clone()));
    let served = postgate::http::serve(listener, state, shutdown.clone())
        .await
        .context("serving HTTP");
    shutdown.cancel();
    let _ = background.await;
    served
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A bare HTTP/1.0 GET over TCP: no client library needed in the image.
async fn healthcheck(listen: &str) -> ExitCode {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let port = listen.rsplit(':').next().unwrap_or("8080");
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let head = String::from_utf8_lossy(&buf);
        if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            bail!("unhealthy: {}", head.lines().next().unwrap_or(""))
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("postgate healthcheck: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("postgate healthcheck: timed out");
            ExitCode::FAILURE
        }
    }
}
