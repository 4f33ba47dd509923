//! `stackctl tenant|token|gen-token`: postgate's admin CLI, run in the stack.
//!
//! The typed arguments become `postgate tenant|token ...` arguments; the engine runs them in a
//! one-off container of the `postgate` service (see `engine::cmd_postgate_admin`), so the admin
//! path needs no database port on the host and no postgate binary beside stackctl.

use anyhow::Result;

use crate::cli::{GenTokenArgs, TenantAction, TokenAction};
use crate::config::Stack;
use crate::engine;

/// `stackctl tenant ...`.
pub fn run_tenant(stack: &Stack, action: TenantAction) -> Result<()> {
    engine::cmd_postgate_admin(stack, tenant_args(action))
}

/// `stackctl token ...`.
pub fn run_token(stack: &Stack, action: TokenAction) -> Result<()> {
    engine::cmd_postgate_admin(stack, token_args(action))
}

/// `stackctl gen-token TENANT NAME --permissions ...`.
pub fn run_gen_token(stack: &Stack, a: GenTokenArgs) -> Result<()> {
    engine::cmd_postgate_admin(
        stack,
        token_args(TokenAction::Create {
            tenant: a.tenant,
            permissions: a.permissions,
            name: Some(a.name),
            expires: a.expires,
        }),
    )
}

fn tenant_args(action: TenantAction) -> Vec<String> {
    match action {
        TenantAction::Create { name } => vec!["tenant".into(), "create".into(), name],
        TenantAction::List => vec!["tenant".into(), "list".into()],
    }
}

fn token_args(action: TokenAction) -> Vec<String> {
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
