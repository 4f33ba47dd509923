//! The admin path (`postgate tenant|token ...`): runs as a login that holds `postgate_admin`.
//! Tenant and role creation go through the SECURITY DEFINER functions of the schema, so neither
//! this login nor the service login needs CREATEROLE.

use crate::token::{self, Permissions};
use std::fmt;
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid tenant name {0:?}: use 1-31 characters a-z, 0-9, _ starting with a letter")]
    TenantName(String),
    #[error("creating tenant {tenant}: {source}")]
    CreateTenant {
        tenant: String,
        source: tokio_postgres::Error,
    },
    #[error("creating a token for tenant {tenant}: {source}")]
    CreateToken {
        tenant: String,
        source: tokio_postgres::Error,
    },
    #[error("listing tenants: {0}")]
    ListTenants(tokio_postgres::Error),
    #[error("listing tokens: {0}")]
    List(tokio_postgres::Error),
    #[error("revoking token {id}: {source}")]
    Revoke {
        id: String,
        source: tokio_postgres::Error,
    },
    #[error("no active token matches {0:?} (give its id or its prefix)")]
    NoSuchToken(String),
    #[error(
        "tenant {tenant} already has a token named `{name}`: pass another --name \
         (`token list --tenant {tenant}` shows the names in use), or leave --name out for a free one"
    )]
    TokenNameTaken { tenant: String, name: String },
}

/// The name of a token created without one; later unnamed tokens of the same tenant get
/// `default-2`, `default-3`, ... (see [`free_default_name`]).
pub const DEFAULT_TOKEN_NAME: &str = "default";

/// The first of `default`, `default-2`, `default-3`, ... not in `taken` (a tenant's token names,
/// revoked ones included: the name stays unique while the row exists).
pub fn free_default_name<S: AsRef<str>>(taken: &[S]) -> String {
    let is_taken = |n: &str| taken.iter().any(|t| t.as_ref() == n);
    if !is_taken(DEFAULT_TOKEN_NAME) {
        return DEFAULT_TOKEN_NAME.to_string();
    }
    (2u64..)
        .map(|i| format!("{DEFAULT_TOKEN_NAME}-{i}"))
        .find(|n| !is_taken(n))
        .expect("an unbounded range has a free name")
}

/// The admin login may hold `postgate_admin` without inheriting it (the stack's `db_migrator`
/// does: its own sessions never see postgate's tables): take the role for this session when the
/// login does not inherit it. A login holding it neither way gets PostgreSQL's own refusals.
pub async fn become_admin(client: &Client) -> Result<(), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT pg_has_role('postgate_admin', 'USAGE'), pg_has_role('postgate_admin', 'SET')",
            &[],
        )
        .await?;
    let (inherits, may_set): (bool, bool) = (row.get(0), row.get(1));
    if !inherits && may_set {
        client.batch_execute("SET ROLE postgate_admin").await?;
    }
    Ok(())
}

/// `tenant list`: (name, creation time in UTC).
pub async fn list_tenants(client: &Client) -> Result<Vec<(String, String)>, AdminError> {
    let rows = client
        .query(
            "SELECT name, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
               FROM postgate.tenants ORDER BY name",
            &[],
        )
        .await
        .map_err(AdminError::ListTenants)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What `tenant create` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantCreated {
    New,
    /// The tenant was there already (`postgate.create_tenant` is one transaction, so an existing
    /// row means a complete tenant); nothing was changed.
    AlreadyExisted,
}

/// `tenant create NAME`; idempotent: an existing tenant is left as it is.
pub async fn create_tenant(client: &Client, name: &str) -> Result<TenantCreated, AdminError> {
    if !token::valid_tenant(name) {
        return Err(AdminError::TenantName(name.to_string()));
    }
    match client
        .execute("SELECT postgate.create_tenant($1)", &[&name])
        .await
    {
        Ok(_) => Ok(TenantCreated::New),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            Ok(TenantCreated::AlreadyExisted)
        }
        Err(source) => Err(AdminError::CreateTenant {
            tenant: name.to_string(),
            source,
        }),
    }
}

/// A freshly created token: `secret` is shown once and stored nowhere.
#[derive(Debug)]
pub struct NewToken {
    pub id: i64,
    /// Its name (unique within the tenant).
    pub name: String,
    pub secret: String,
}

/// `token create`: makes sure the permission set's role and login exist (the login's password is
/// derived from the pepper, sent as a SCRAM verifier), then stores the token's HMAC.
pub async fn create_token(
    client: &mut Client,
    pepper: &[u8],
    tenant: &str,
    name: &str,
    permissions: Permissions,
    expires_in_secs: Option<u64>,
) -> Result<NewToken, AdminError> {
    let err = |source: tokio_postgres::Error| {
        let name_taken = source
            .as_db_error()
            .and_then(|d| d.constraint())
            .is_some_and(|c| c == "tokens_tenant_name_key");
        if name_taken {
            AdminError::TokenNameTaken {
                tenant: tenant.to_string(),
                name: name.to_string(),
            }
        } else {
            AdminError::CreateToken {
                tenant: tenant.to_string(),
                source,
            }
        }
    };
    let login = token::login_name(tenant, permissions);
    let verifier = token::scram_verifier(&token::login_password(pepper, &login));
    let secret = token::generate();
    let tx = client.transaction().await.map_err(err)?;
    tx.execute(
        "SELECT postgate.ensure_login($1, $2, $3)",
        &[&tenant, &permissions.code(), &verifier],
    )
    .await
    .map_err(err)?;
    let perms: Vec<String> = permissions
        .to_list()
        .into_iter()
        .map(String::from)
        .collect();
    let expires = expires_in_secs.map(|s| s as f64);
    let row = tx
        .query_one(
            "INSERT INTO postgate.tokens (tenant, name, prefix, hash, permissions, expires_at) \
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING id",
            &[
                &tenant,
                &name,
                &token::display_prefix(&secret),
                &token::hash(pepper, &secret),
                &perms,
                &expires,
            ],
        )
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(NewToken {
        id: row.get(0),
        name: name.to_string(),
        secret,
    })
}

/// `token create` without `--name`: [`create_token`] under the tenant's first free default name
/// (`default`, then `default-2`, ...). A concurrent create that takes the same name first makes
/// this one try the next free name.
pub async fn create_unnamed_token(
    client: &mut Client,
    pepper: &[u8],
    tenant: &str,
    permissions: Permissions,
    expires_in_secs: Option<u64>,
) -> Result<NewToken, AdminError> {
    const ATTEMPTS: usize = 5;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let rows = client
            .query(
                "SELECT name FROM postgate.tokens WHERE tenant = $1",
                &[&tenant],
            )
            .await
            .map_err(|source| AdminError::CreateToken {
                tenant: tenant.to_string(),
                source,
            })?;
        let taken: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let name = free_default_name(&taken);
        match create_token(client, pepper, tenant, &name, permissions, expires_in_secs).await {
            Err(e @ AdminError::TokenNameTaken { .. }) => last = Some(e),
            other => return other,
        }
    }
    Err(last.expect("at least one attempt"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub tenant: String,
    pub name: String,
    pub prefix: String,
    pub permissions: Vec<String>,
    pub last_used: Option<String>,
    pub expires: Option<String>,
    pub revoked: bool,
}

impl fmt::Display for TokenRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\t{}\t{}\t{}…\t{}\tlast used: {}\texpires: {}{}",
            self.id,
            self.tenant,
            self.name,
            self.prefix,
            self.permissions.join(","),
            self.last_used.as_deref().unwrap_or("never"),
            self.expires.as_deref().unwrap_or("never"),
            if self.revoked { "\tREVOKED" } else { "" }
        )
    }
}

/// `token list [--tenant T]`.
pub async fn list_tokens(
    client: &Client,
    tenant: Option<&str>,
) -> Result<Vec<TokenRow>, AdminError> {
    let rows = client
        .query(
            "SELECT id, tenant, name, prefix, permissions, \
                    to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                    to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                    revoked_at IS NOT NULL \
               FROM postgate.tokens WHERE $1::text IS NULL OR tenant = $1 ORDER BY id",
            &[&tenant],
        )
        .await
        .map_err(AdminError::List)?;
    Ok(rows
        .iter()
        .map(|r| TokenRow {
            id: r.get(0),
            tenant: r.get(1),
            name: r.get(2),
            prefix: r.get(3),
            permissions: r.get(4),
            last_used: r.get(5),
            expires: r.get(6),
            revoked: r.get(7),
        })
        .collect())
}

/// `token revoke ID|PREFIX`: takes effect on the next request (lookups are not cached).
pub async fn revoke_token(client: &Client, id_or_prefix: &str) -> Result<u64, AdminError> {
    let n = client
        .execute(
            "UPDATE postgate.tokens SET revoked_at = now() \
              WHERE revoked_at IS NULL AND (id::text = $1 OR prefix = $1)",
            &[&id_or_prefix],
        )
        .await
        .map_err(|source| AdminError::Revoke {
            id: id_or_prefix.to_string(),
            source,
        })?;
    if n == 0 {
        return Err(AdminError::NoSuchToken(id_or_prefix.to_string()));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_tokens_take_the_first_free_default_name() {
        assert_eq!(free_default_name::<&str>(&[]), "default");
        assert_eq!(free_default_name(&["reader"]), "default");
        assert_eq!(free_default_name(&["default"]), "default-2");
        assert_eq!(
            free_default_name(&["default", "default-2", "default-4"]),
            "default-3"
        );
        assert_eq!(free_default_name(&["default-2"]), "default");
    }
}
