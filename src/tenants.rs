//! `stackctl tenant|token|gen-token`: postgate's admin CLI, run in the stack.
//!
//! The requests are postgate's own types (`protocol::admin`); each becomes the `postgate
//! tenant|token ...` argv postgate parses, and [`admin`] runs it in a one-off container of the
//! `postgate` service, so the admin path needs no database port on the host and no postgate binary
//! beside stackctl.

use anyhow::{Context, Result, bail};

use crate::config::Stack;
use crate::engine::{self, Docker};
use crate::error::UserError;
use crate::secrets::EnvFile;

/// Runs postgate's admin CLI (`postgate ARGS...`) once in the stack: a one-off container of the
/// `postgate` service (its image, network and environment) on the stack's network, after the
/// database and the migrate job are up. It connects as the operator's login `db_migrator`, which
/// holds `postgate_admin` (SET ROLE, not inherited), straight to PostgreSQL: the service login
/// `postgate` itself cannot create tenants or tokens.
pub async fn admin(stack: &Stack, env: &EnvFile, docker: &Docker, args: Vec<String>) -> Result<()> {
    let project = engine::load_project(stack, env, None)?;
    // The password the stack's containers get: `.env`, overridden by the environment.
    let vars = engine::variables(env);
    let password = vars
        .get("MIGRATOR_PASSWORD")
        .filter(|p| !p.is_empty())
        .with_context(|| {
            UserError::new(format!(
                "{} has no MIGRATOR_PASSWORD (the admin login db_migrator)",
                stack.env_path().display()
            ))
            .hint("run `stackctl init` to add the missing secrets")
        })?;
    let admin_url = format!(
        "postgres://db_migrator:{password}@postgres:5432/{}",
        stack.file.postgres.database
    );
    let env = [("POSTGATE_ADMIN_DATABASE_URL".to_string(), admin_url)];
    let first = ["migrate".to_string()];
    let code = engine::run_once(docker, stack, &project, "postgate", &first, args, &env).await?;
    if code != 0 {
        bail!(
            UserError::new(format!("postgate's admin command exited with code {code}"))
                .hint("its message is above")
        );
    }
    Ok(())
}
