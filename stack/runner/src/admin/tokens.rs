//! A worker's own postgate token for `env.DB`: made (with its tenant, if missing) as
//! `postgate_admin`, checked for reuse, and revoked when it is of no more use. Tokens are named
//! after their worker, so that they can be found again.

use tokio_postgres::Client;

use super::{AdminError, DbBinding, db};
use crate::secrets::{DB_TOKEN, SecretsKey};

fn token_name(worker: &str) -> String {
    format!("runner-worker:{worker}")
}

/// Make (if missing) the tenant and a new token for `worker`, as `postgate_admin`.
pub(super) async fn make_token(
    client: &mut Client,
    pepper: &[u8],
    worker: &str,
    tenant: &str,
    perms: postgate::token::Permissions,
) -> Result<String, AdminError> {
    client
        .batch_execute("SET ROLE postgate_admin")
        .await
        .map_err(db("taking the postgate_admin role (is the role bootstrap applied? run `stackctl migrate`)"))?;
    let r = async {
        let exists = client
            .query_opt("SELECT 1 FROM postgate.tenants WHERE name = $1", &[&tenant])
            .await
            .map_err(db("looking up the tenant"))?
            .is_some();
        if !exists {
            postgate::admin::create_tenant(client, tenant).await?;
        }
        // Token names are unique per tenant, and revoked tokens keep theirs: add a suffix.
        let name = format!(
            "{}:{}",
            token_name(worker),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let t = postgate::admin::create_token(client, pepper, tenant, &name, perms, None).await?;
        Ok::<_, AdminError>(t.secret)
    }
    .await;
    let reset = client.batch_execute("RESET ROLE").await;
    let secret = r?;
    reset.map_err(db("resetting the role"))?;
    Ok(secret)
}

/// Whether the worker's stored token can serve `binding` as it is: made for the same tenant and
/// permissions, and still live in postgate (known under this pepper, not revoked, not expired).
/// A token revoked by hand (`stackctl token revoke`) or made under an earlier pepper is replaced
/// by the next deploy.
pub(super) async fn token_reusable(
    client: &Client,
    worker: &str,
    binding: &DbBinding,
    key: Option<&SecretsKey>,
    pepper: Option<&[u8]>,
) -> Result<bool, AdminError> {
    let (Some(key), Some(pepper)) = (key, pepper) else {
        return Ok(false);
    };
    let wanted = postgate::token::Permissions::from_list(&binding.permissions)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let Some(r) = client
        .query_opt(
            "SELECT w.db_tenant, w.db_permissions, s.nonce, s.sealed FROM runner.workers w
               JOIN runner.worker_secrets s ON s.worker = w.name AND s.name = $2
              WHERE w.name = $1",
            &[&worker, &DB_TOKEN],
        )
        .await
        .map_err(db("reading the worker's database binding"))?
    else {
        return Ok(false);
    };
    let same_binding = r.get::<_, Option<String>>(0).as_deref() == Some(binding.tenant.as_str())
        && r.get::<_, Option<Vec<String>>>(1)
            .and_then(|p| postgate::token::Permissions::from_list(&p).ok())
            == Some(wanted);
    if !same_binding {
        return Ok(false);
    }
    let Ok(token) = key.open(worker, DB_TOKEN, r.get(2), r.get(3)) else {
        return Ok(false);
    };
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM postgate.tokens WHERE hash = $1 AND revoked_at IS NULL
                              AND (expires_at IS NULL OR expires_at > now()))",
            &[&postgate::token::hash(pepper, token.expose())],
        )
        .await
        .map_err(db("checking the worker's database token"))?
        .get(0))
}

/// Which of a worker's tokens to revoke.
pub(super) enum Revoke {
    /// All but this one (by hash); all with `None`.
    AllBut(Option<Vec<u8>>),
    /// Only this one (by hash).
    Only(Vec<u8>),
}

/// Revoke tokens made for `worker`, as `postgate_admin`.
pub(super) async fn revoke_tokens(
    client: &mut Client,
    worker: &str,
    which: Revoke,
) -> Result<u64, AdminError> {
    let (keep, only) = match which {
        Revoke::AllBut(keep) => (keep, None),
        Revoke::Only(hash) => (None, Some(hash)),
    };
    client
        .batch_execute("SET ROLE postgate_admin")
        .await
        .map_err(db("taking the postgate_admin role"))?;
    let r = client
        .execute(
            "UPDATE postgate.tokens SET revoked_at = now()
              WHERE revoked_at IS NULL AND name LIKE $1 || ':%'
                AND ($2::bytea IS NULL OR hash <> $2)
                AND ($3::bytea IS NULL OR hash = $3)",
            &[&token_name(worker), &keep, &only],
        )
        .await
        .map_err(db("revoking the worker's tokens"));
    let reset = client.batch_execute("RESET ROLE").await;
    let n = r?;
    reset.map_err(db("resetting the role"))?;
    Ok(n)
}
