//! `runner worker deploy|list|rm`: the admin side of workers, run by `stackctl worker ...`
//! inside a running runner container (so it needs no database port on the host and uses the
//! container's own `RUNNER_DATABASE_URL`, `POSTGATE_TOKEN_PEPPER` and `RUNNER_SECRETS_KEY`).
//!
//! A deploy is one JSON [`Manifest`] read from stdin (the source and secret values never appear
//! in argv or the environment). With `db`, the worker gets a postgate tenant (made if missing)
//! and a token of its own, kept as a sealed secret; a token is reused while its tenant and
//! permissions are unchanged, and revoked when they change or the worker is removed (or when
//! the deploy that made it fails). A manifest identical to what is deployed (same source,
//! settings, limits, binding and secret values) changes nothing and keeps its version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::db::DbError;
use crate::secrets::{DB_TOKEN, SecretsKey};

/// Everything `stackctl worker deploy` sends.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub routes: Vec<String>,
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// New or changed secrets; secrets deployed before and not named here are kept.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub db: Option<DbBinding>,
}

/// Per-worker limits; `None` = the replica's default (stack.toml `[runner]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub cpu_ms: Option<i32>,
    pub memory_mb: Option<i32>,
    pub wall_ms: Option<i32>,
    pub body_bytes: Option<i32>,
    pub concurrency: Option<i32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DbBinding {
    pub tenant: String,
    /// e.g. `["SELECT", "INSERT"]`.
    pub permissions: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error(transparent)]
    Postgate(#[from] postgate::admin::AdminError),
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    pub name: String,
    pub version: i32,
    pub secrets: Vec<String>,
    /// `Some(true)` when a new postgate token was made for the worker.
    pub db_token_created: Option<bool>,
    /// The manifest matched the deployed version: nothing was written.
    pub unchanged: bool,
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !k.starts_with("__")
}

/// Check a manifest before anything is written.
pub fn validate(m: &Manifest) -> Result<(), AdminError> {
    let bad = |s: String| Err(AdminError::Invalid(s));
    if !valid_name(&m.name) {
        return bad(format!(
            "invalid worker name {:?}: use 1-63 characters a-z, 0-9 and '-' (not at either end)",
            m.name
        ));
    }
    for k in m.vars.keys().chain(m.secrets.keys()) {
        if !valid_key(k) {
            return bad(format!(
                "invalid var/secret name {k:?}: use letters, digits and '_', not starting with a digit or '__'"
            ));
        }
    }
    // PostgreSQL's text cannot hold NUL: say which field has one before anything is written.
    let texts = [("source", &m.source)]
        .into_iter()
        .chain(m.routes.iter().map(|r| ("a route", r)))
        .chain(m.queues.iter().map(|q| ("a queue name", q)))
        .chain(m.cron.iter().map(|c| ("the cron expression", c)))
        .chain(m.timezone.iter().map(|t| ("the time zone", t)))
        .chain(m.vars.values().map(|v| ("a var's value", v)));
    for (what, text) in texts {
        if text.contains('\0') {
            return bad(format!(
                "{what} contains a NUL character, which cannot be stored"
            ));
        }
    }
    if let Some(k) = m.vars.keys().find(|k| m.secrets.contains_key(*k)) {
        return bad(format!("{k} is given both as a var and as a secret"));
    }
    let l = &m.limits;
    for (what, v) in [
        ("cpu_ms", l.cpu_ms),
        ("memory_mb", l.memory_mb),
        ("wall_ms", l.wall_ms),
        ("concurrency", l.concurrency),
    ] {
        if v.is_some_and(|v| v <= 0) {
            return bad(format!("limit {what} must be positive"));
        }
    }
    if l.body_bytes.is_some_and(|v| v < 0) {
        return bad("limit body_bytes must not be negative".into());
    }
    if let Some(db) = &m.db {
        if !postgate::token::valid_tenant(&db.tenant) {
            return bad(format!(
                "invalid tenant name {:?}: use 1-31 characters a-z, 0-9, _ starting with a letter",
                db.tenant
            ));
        }
        postgate::token::Permissions::from_list(&db.permissions)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
    }
    Ok(())
}

fn db(what: &str) -> impl FnOnce(tokio_postgres::Error) -> AdminError + '_ {
    move |e| AdminError::Db(DbError::new(what, e))
}

/// Deploy `m`: a new version, its settings, its secrets and (with `db`) its token, all visible
/// to the replicas at once (one transaction; NOTIFY on commit).
pub async fn deploy(
    client: &mut Client,
    m: &Manifest,
    key: Option<&SecretsKey>,
    pepper: Option<&[u8]>,
) -> Result<Deployed, AdminError> {
    validate(m)?;
    let needs_key = !m.secrets.is_empty() || m.db.is_some();
    let key = match (needs_key, key) {
        (true, None) => {
            return Err(AdminError::Invalid(
                "secrets and env.DB need RUNNER_SECRETS_KEY in the runner's environment; run `stackctl init` and `stackctl up runner`".into(),
            ));
        }
        (_, k) => k,
    };
    // Whether the stored token serves the binding as it is: asked once, for both questions below.
    let token_ok = match &m.db {
        Some(b) => Some(token_reusable(client, &m.name, b, key, pepper).await?),
        None => None,
    };
    if let Some(version) = deployed_as(client, m, key, token_ok).await? {
        return Ok(Deployed {
            name: m.name.clone(),
            version,
            secrets: secret_names(client, &m.name).await?,
            db_token_created: m.db.as_ref().map(|_| false),
            unchanged: true,
        });
    }
    let had_db = client
        .query_opt(
            "SELECT db_tenant FROM runner.workers WHERE name = $1",
            &[&m.name],
        )
        .await
        .map_err(db("reading the worker"))?
        .is_some_and(|r| r.get::<_, Option<String>>(0).is_some());
    // env.DB: the token first (postgate's admin API commits on its own).
    let mut new_token: Option<String> = None;
    let mut db_token_created = None;
    if let Some(binding) = &m.db {
        let perms = postgate::token::Permissions::from_list(&binding.permissions)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        let same = token_ok == Some(true);
        db_token_created = Some(!same);
        if !same {
            let Some(pepper) = pepper else {
                return Err(AdminError::Invalid(
                    "env.DB needs POSTGATE_TOKEN_PEPPER in the runner's environment".into(),
                ));
            };
            new_token = Some(make_token(client, pepper, &m.name, &binding.tenant, perms).await?);
        }
    }

    let stored = store(client, m, key, new_token.as_deref()).await;
    let (version, names) = match stored {
        Ok(v) => v,
        Err(e) => {
            // The token made for this deploy is stored nowhere: it must not outlive it.
            if let (Some(t), Some(p)) = (&new_token, pepper)
                && let Err(r) =
                    revoke_tokens(client, &m.name, Revoke::Only(postgate::token::hash(p, t))).await
            {
                crate::log::line(
                    "error",
                    "revoking the token of a failed deploy",
                    serde_json::json!({"worker": m.name, "error": r.to_string()}),
                );
            }
            return Err(e);
        }
    };
    if had_db && (new_token.is_some() || m.db.is_none()) {
        // Tokens of this worker other than the one now stored are of no use: revoke them.
        let keep = new_token
            .as_deref()
            .zip(pepper)
            .map(|(t, p)| postgate::token::hash(p, t));
        revoke_tokens(client, &m.name, Revoke::AllBut(keep)).await?;
    }
    Ok(Deployed {
        name: m.name.clone(),
        version,
        secrets: names,
        db_token_created,
        unchanged: false,
    })
}

/// The new version, its settings and sealed secrets (with `new_token` as the worker's token),
/// in one transaction; the version number and the worker's secret names.
async fn store(
    client: &mut Client,
    m: &Manifest,
    key: Option<&SecretsKey>,
    new_token: Option<&str>,
) -> Result<(i32, Vec<String>), AdminError> {
    let tx = client
        .transaction()
        .await
        .map_err(db("starting the deploy"))?;
    let vars = serde_json::to_value(&m.vars).unwrap_or_default();
    let row = tx
        .query_one(
            "SELECT runner.deploy($1, $2, $3, $4, $5, $6, coalesce($7, 'UTC'))",
            &[
                &m.name,
                &m.source,
                &m.routes,
                &m.queues,
                &vars,
                &m.cron,
                &m.timezone,
            ],
        )
        .await
        .map_err(db("storing the worker version"))?;
    let version: i32 = row.get(0);
    let l = &m.limits;
    let (tenant, perms) = match &m.db {
        Some(b) => (Some(b.tenant.clone()), Some(b.permissions.clone())),
        None => (None, None),
    };
    tx.execute(
        "UPDATE runner.workers SET cpu_ms = $2, memory_mb = $3, wall_ms = $4, body_bytes = $5,
                concurrency = $6, db_tenant = $7, db_permissions = $8 WHERE name = $1",
        &[
            &m.name,
            &l.cpu_ms,
            &l.memory_mb,
            &l.wall_ms,
            &l.body_bytes,
            &l.concurrency,
            &tenant,
            &perms,
        ],
    )
    .await
    .map_err(db("storing the worker's limits"))?;
    let mut sealed: Vec<(String, String)> = m
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(t) = new_token {
        sealed.push((DB_TOKEN.to_string(), t.to_string()));
    }
    if let Some(key) = key {
        for (name, value) in &sealed {
            let (nonce, blob) = key.seal(&m.name, name, value)?;
            tx.execute(
                "INSERT INTO runner.worker_secrets (worker, name, nonce, sealed) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (worker, name) DO UPDATE
                    SET nonce = excluded.nonce, sealed = excluded.sealed, updated_at = now()",
                &[&m.name, name, &nonce, &blob],
            )
            .await
            .map_err(db("storing the worker's secrets"))?;
        }
    }
    if m.db.is_none() {
        tx.execute(
            "DELETE FROM runner.worker_secrets WHERE worker = $1 AND name = $2",
            &[&m.name, &DB_TOKEN],
        )
        .await
        .map_err(db("removing the worker's database token"))?;
    }
    let names = secret_names(&tx, &m.name).await?;
    tx.commit().await.map_err(db("committing the deploy"))?;
    Ok((version, names))
}

/// The worker's own secret names (not the reserved `__…` ones), sorted.
async fn secret_names(
    client: &impl tokio_postgres::GenericClient,
    worker: &str,
) -> Result<Vec<String>, AdminError> {
    Ok(client
        .query(
            "SELECT name FROM runner.worker_secrets WHERE worker = $1 AND name NOT LIKE '\\_\\_%' ORDER BY name",
            &[&worker],
        )
        .await
        .map_err(db("listing the worker's secrets"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The active version, when `m` is exactly what is deployed: the same source, routes, queues,
/// vars, schedule, limits and database binding (`token_ok`: the stored token serves `m.db`, see
/// [`token_reusable`]), and every secret it names holding the same value. `None` when anything
/// differs or the worker is new.
async fn deployed_as(
    client: &Client,
    m: &Manifest,
    key: Option<&SecretsKey>,
    token_ok: Option<bool>,
) -> Result<Option<i32>, AdminError> {
    let Some(r) = client
        .query_opt(
            "SELECT w.active_version, v.source, w.routes, w.queues, w.vars, s.cron, s.timezone,
                    w.cpu_ms, w.memory_mb, w.wall_ms, w.body_bytes, w.concurrency, w.db_tenant
               FROM runner.workers w
               JOIN runner.worker_versions v ON v.worker = w.name AND v.version = w.active_version
               LEFT JOIN runner.schedules s ON s.name = 'worker:' || w.name
              WHERE w.name = $1",
            &[&m.name],
        )
        .await
        .map_err(db("reading the deployed version"))?
    else {
        return Ok(None);
    };
    let vars = serde_json::to_value(&m.vars).unwrap_or_default();
    let l = &m.limits;
    let same = r.get::<_, String>(1) == m.source
        && r.get::<_, Vec<String>>(2) == m.routes
        && r.get::<_, Vec<String>>(3) == m.queues
        && r.get::<_, serde_json::Value>(4) == vars
        && r.get::<_, Option<String>>(5) == m.cron
        && (m.cron.is_none()
            || r.get::<_, Option<String>>(6).as_deref()
                == Some(m.timezone.as_deref().unwrap_or("UTC")))
        && [
            l.cpu_ms,
            l.memory_mb,
            l.wall_ms,
            l.body_bytes,
            l.concurrency,
        ] == [7, 8, 9, 10, 11].map(|i| r.get::<_, Option<i32>>(i));
    let binding_same = match token_ok {
        None => r.get::<_, Option<String>>(12).is_none(),
        Some(ok) => ok,
    };
    if !same || !binding_same {
        return Ok(None);
    }
    if !m.secrets.is_empty() {
        let Some(key) = key else { return Ok(None) };
        let names: Vec<&str> = m.secrets.keys().map(String::as_str).collect();
        let rows = client
            .query(
                "SELECT name, nonce, sealed FROM runner.worker_secrets
                  WHERE worker = $1 AND name = ANY($2)",
                &[&m.name, &names],
            )
            .await
            .map_err(db("reading the worker's secrets"))?;
        let stored: BTreeMap<String, crate::secrets::Secret> = rows
            .iter()
            .filter_map(|r| {
                let name: String = r.get(0);
                let open = key.open(&m.name, &name, r.get(1), r.get(2)).ok()?;
                Some((name, open))
            })
            .collect();
        let all_same = m
            .secrets
            .iter()
            .all(|(k, v)| stored.get(k).is_some_and(|s| s.expose() == v));
        if !all_same {
            return Ok(None);
        }
    }
    Ok(r.get(0))
}

fn token_name(worker: &str) -> String {
    format!("runner-worker:{worker}")
}

/// Make (if missing) the tenant and a new token for `worker`, as `postgate_admin`.
async fn make_token(
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
async fn token_reusable(
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
enum Revoke {
    /// All but this one (by hash); all with `None`.
    AllBut(Option<Vec<u8>>),
    /// Only this one (by hash).
    Only(Vec<u8>),
}

/// Revoke tokens made for `worker`, as `postgate_admin`.
async fn revoke_tokens(
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

/// One row of `worker list`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRow {
    pub name: String,
    pub version: Option<i32>,
    pub routes: Vec<String>,
    pub queues: Vec<String>,
    pub cron: Option<String>,
    pub db_tenant: Option<String>,
    pub secrets: Vec<String>,
    pub updated_at: String,
}

pub async fn list(client: &Client) -> Result<Vec<WorkerRow>, AdminError> {
    let rows = client
        .query(
            "SELECT w.name, w.active_version, w.routes, w.queues, s.cron, w.db_tenant,
                    coalesce((SELECT array_agg(x.name ORDER BY x.name) FROM runner.worker_secrets x
                               WHERE x.worker = w.name AND x.name NOT LIKE '\\_\\_%'), '{}'),
                    to_char(w.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
               FROM runner.workers w
               LEFT JOIN runner.schedules s ON s.name = 'worker:' || w.name
              ORDER BY w.name",
            &[],
        )
        .await
        .map_err(db("listing workers"))?;
    Ok(rows
        .iter()
        .map(|r| WorkerRow {
            name: r.get(0),
            version: r.get(1),
            routes: r.get(2),
            queues: r.get(3),
            cron: r.get(4),
            db_tenant: r.get(5),
            secrets: r.get(6),
            updated_at: r.get(7),
        })
        .collect())
}

pub fn render_list(rows: &[WorkerRow]) -> String {
    let mut out = format!(
        "{:<24} {:>7} {:<28} {:<16} {:<14} {}\n",
        "NAME", "VERSION", "ROUTES", "QUEUES", "DB TENANT", "SECRETS"
    );
    for w in rows {
        out.push_str(&format!(
            "{:<24} {:>7} {:<28} {:<16} {:<14} {}\n",
            w.name,
            w.version.map(|v| v.to_string()).unwrap_or_default(),
            w.routes.join(","),
            w.queues.join(","),
            w.db_tenant.as_deref().unwrap_or("-"),
            w.secrets.join(","),
        ));
    }
    out
}

/// Remove a worker (versions, schedule, secrets) and revoke its tokens. Its tenant and data
/// stay. Returns false when no such worker exists.
pub async fn remove(client: &mut Client, name: &str) -> Result<bool, AdminError> {
    let had_db = client
        .query_opt(
            "SELECT db_tenant FROM runner.workers WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(db("reading the worker"))?
        .is_some_and(|r| r.get::<_, Option<String>>(0).is_some());
    let tx = client
        .transaction()
        .await
        .map_err(db("starting the removal"))?;
    tx.execute(
        "DELETE FROM runner.schedules WHERE name = 'worker:' || $1",
        &[&name],
    )
    .await
    .map_err(db("removing the worker's schedule"))?;
    let n = tx
        .execute("DELETE FROM runner.workers WHERE name = $1", &[&name])
        .await
        .map_err(db("removing the worker"))?;
    tx.commit().await.map_err(db("committing the removal"))?;
    if had_db {
        revoke_tokens(client, name, Revoke::AllBut(None)).await?;
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Manifest {
        serde_json::from_str(r#"{"name":"hello","source":"export default {}"}"#).unwrap()
    }

    #[test]
    fn validation() {
        assert!(validate(&m()).is_ok());
        let mut x = m();
        x.name = "Bad_Name".into();
        assert!(validate(&x).is_err());
        let mut x = m();
        x.secrets.insert("__db_token".into(), "x".into());
        assert!(validate(&x).is_err(), "reserved names are refused");
        let mut x = m();
        x.vars.insert("K".into(), "v".into());
        x.secrets.insert("K".into(), "s".into());
        assert!(validate(&x).is_err());
        let mut x = m();
        x.limits.cpu_ms = Some(0);
        assert!(validate(&x).is_err());
        let mut x = m();
        x.vars.insert("K".into(), "a\0b".into());
        assert!(
            validate(&x)
                .unwrap_err()
                .to_string()
                .contains("a var's value contains a NUL"),
            "NUL is refused before PostgreSQL sees it"
        );
        let mut x = m();
        x.db = Some(DbBinding {
            tenant: "shop".into(),
            permissions: vec!["DDL".into()],
        });
        assert!(
            validate(&x).is_err(),
            "DDL alone is refused by postgate's rules"
        );
        assert!(serde_json::from_str::<Manifest>(r#"{"name":"a","source":"","x":1}"#).is_err());
    }
}
