//! postgate's admin requests: `tenant create|list`, `token create|list|revoke` and `gen-token`.
//!
//! postgate's own CLI parses these types, and stackctl's `tenant`, `token` and `gen-token`
//! commands embed the same ones; stackctl turns a request back into the argv postgate parses
//! with [`TenantAction::to_args`] / [`TokenAction::to_args`] and runs it in the stack. One
//! definition, so the two command lines cannot drift apart. Where to connect is not part of a
//! request: each side supplies it (postgate's admin flags and environment).

use clap::{Args, Subcommand};

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TenantAction {
    /// Create a tenant: a schema and its NOLOGIN roles.
    Create {
        /// 1-31 characters a-z, 0-9, _ starting with a letter.
        name: String,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TokenAction {
    /// Create a token for a tenant and print it once.
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

// `gen-token TENANT NAME --permissions ...`: `token create` in the form OpenWorkers users know.
// (No doc comment: clap would take it for the command's help, which the `gen-token` variant gives.)
#[derive(Debug, Clone, PartialEq, Eq, Args)]
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

impl TenantAction {
    /// The argv (after the program name) that makes postgate run this request.
    pub fn to_args(&self) -> Vec<String> {
        let mut v: Vec<String> = vec!["tenant".into()];
        match self {
            TenantAction::Create { name } => v.extend(["create".into(), name.clone()]),
            TenantAction::List => v.push("list".into()),
        }
        v
    }
}

impl TokenAction {
    /// The argv (after the program name) that makes postgate run this request.
    pub fn to_args(&self) -> Vec<String> {
        let mut v: Vec<String> = vec!["token".into()];
        match self {
            TokenAction::Create {
                tenant,
                permissions,
                name,
                expires,
            } => {
                v.extend([
                    "create".into(),
                    "--tenant".into(),
                    tenant.clone(),
                    "--permissions".into(),
                    permissions.clone(),
                ]);
                // Without --name postgate picks the tenant's first free default name and says which.
                if let Some(n) = name {
                    v.extend(["--name".into(), n.clone()]);
                }
                if let Some(e) = expires {
                    v.extend(["--expires".into(), e.clone()]);
                }
            }
            TokenAction::List { tenant } => {
                v.push("list".into());
                if let Some(t) = tenant {
                    v.extend(["--tenant".into(), t.clone()]);
                }
            }
            TokenAction::Revoke { id_or_prefix } => {
                v.extend(["revoke".into(), id_or_prefix.clone()])
            }
        }
        v
    }
}

impl GenTokenArgs {
    /// The `token create` this alias stands for.
    pub fn into_create(self) -> TokenAction {
        TokenAction::Create {
            tenant: self.tenant,
            permissions: self.permissions,
            name: Some(self.name),
            expires: self.expires,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_reach_postgate_as_its_own_cli_spells_them() {
        assert_eq!(
            TokenAction::Create {
                tenant: "acme".into(),
                permissions: "SELECT".into(),
                name: Some("n".into()),
                expires: Some("30d".into()),
            }
            .to_args(),
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
            TokenAction::Create {
                tenant: "acme".into(),
                permissions: "SELECT".into(),
                name: None,
                expires: None,
            }
            .to_args(),
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
            TokenAction::Revoke {
                id_or_prefix: "pg_abc".into()
            }
            .to_args(),
            ["token", "revoke", "pg_abc"]
        );
        assert_eq!(TenantAction::List.to_args(), ["tenant", "list"]);
    }

    #[test]
    fn gen_token_is_token_create_with_a_name() {
        let a = GenTokenArgs {
            tenant: "acme".into(),
            name: "reader".into(),
            permissions: "SELECT".into(),
            expires: None,
        };
        assert_eq!(
            a.into_create(),
            TokenAction::Create {
                tenant: "acme".into(),
                permissions: "SELECT".into(),
                name: Some("reader".into()),
                expires: None,
            }
        );
    }
}
