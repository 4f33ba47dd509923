//! `runner worker deploy`: store a new version of a worker, its settings and sealed secrets in one
//! transaction, and with `db` its own postgate token; or change nothing when the manifest is
//! what is deployed already.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::tokens::{Revoke, make_token, revoke_tokens, token_reusable};
use super::validate::validate;
use super::{AdminError, Deployed, Manifest, db};
use crate::secrets::{DB_TOKEN, SecretsKey};

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
    let workflows = serde_json::to_value(&m.workflows).unwrap_or_default();
    tx.execute(
        "SELECT runner.deploy_workflows($1, $2)",
        &[&m.name, &workflows],
    )
    .await
    .map_err(db("binding the worker's workflows"))?;
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
                    w.cpu_ms, w.memory_mb, w.wall_ms, w.body_bytes, w.concurrency, w.db_tenant,
                    (SELECT coalesce(jsonb_object_agg(wf.binding, wf.name), '{}'::jsonb)
                       FROM runner.workflows wf WHERE wf.worker = w.name)
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
        ] == [7, 8, 9, 10, 11].map(|i| r.get::<_, Option<i32>>(i))
        && r.get::<_, serde_json::Value>(13)
            == serde_json::to_value(&m.workflows).unwrap_or_default();
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
