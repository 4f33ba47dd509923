//! `stackctl tenant|token|gen-token`: postgate's admin CLI, run in the stack.
//!
//! The typed arguments become `postgate tenant|token ...` arguments; [`admin`] runs them in a
//! one-off container of the `postgate` service, so the admin path needs no database port on the
//! host and no postgate binary beside stackctl.

use anyhow::{Context, Result, bail};

use crate::cli::{TenantAction, TokenAction};
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
    let password = env
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

/// `postgate tenant ...` arguments.
pub fn tenant_args(action: TenantAction) -> Vec<String> {
    match action {
        TenantAction::Create { name } => vec!["tenant".into(), "create".into(), name],
        TenantAction::List => vec!["tenant".into(), "list".into()],
    }
}

/// `postgate token ...` arguments.
pub fn token_args(action: TokenAction) -> Vec<String> {
    let mut v: Vec<String> = vec!["token".into()];
    match action {
        TokenAction::Create {
            tenant,
            permissions,
            name,
            expires,
        } => {
            v.extend([
                "create".into(),
                "--tenant".into(),
                tenant,
                "--permissions".into(),
                permissions,
            ]);
            // Without --name postgate picks the tenant's first free default name and says which.
            if let Some(n) = name {
                v.extend(["--name".into(), n]);
            }
            if let Some(e) = expires {
                v.extend(["--expires".into(), e]);
            }
        }
        TokenAction::List { tenant } => {
            v.push("list".into());
            if let Some(t) = tenant {
                v.extend(["--tenant".into(), t]);
            }
        }
        TokenAction::Revoke { id_or_prefix } => v.extend(["revoke".into(), id_or_prefix]),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_reach_postgate_as_its_own_cli_spells_them() {
        assert_eq!(
            token_args(TokenAction::Create {
                tenant: "acme".into(),
                permissions: "SELECT".into(),
                name: Some("n".into()),
                expires: Some("30d".into()),
            }),
            [
                "token",
                "create",
                "--tenant",
                "acme",
                "--permissions",
                "SELECT",
                "--name",
                "n",
                "--expires",
                "30d"
            ]
        );
        // No --name: none is passed on, so postgate picks a free one instead of `default` twice.
        assert_eq!(
            token_args(TokenAction::Create {
                tenant: "acme".into(),
                permissions: "SELECT".into(),
                name: None,
                expires: None,
            }),
            [
                "token",
                "create",
                "--tenant",
                "acme",
                "--permissions",
                "SELECT"
            ]
        );
        assert_eq!(
            token_args(TokenAction::Revoke {
                id_or_prefix: "pg_abc".into()
            }),
            ["token", "revoke", "pg_abc"]
        );
        assert_eq!(tenant_args(TenantAction::List), ["tenant", "list"]);
    }
}
