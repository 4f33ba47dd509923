//! The target side: the compatibility layer before the restore (`compat.sql`), the safety check
//! and `--clean` before it, and the grants, role bootstrap and ANALYZE after it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::plan::TargetInfo;
use crate::db::bootstrap;

const SQL: &str = include_str!("compat.sql");

/// What the target offers (extensions, roles) and its version.
pub async fn target_info(su: &Client) -> Result<(TargetInfo, i32)> {
    let ext = su
        .query("SELECT name::text FROM pg_available_extensions", &[])
        .await
        .context("reading the target's available extensions")?;
    let roles = su
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .context("reading the target's roles")?;
    let v: i32 = su
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .context("reading the target's version")?
        .get(0);
    Ok((
        TargetInfo {
            available_extensions: ext.iter().map(|r| r.get(0)).collect(),
            roles: roles.iter().map(|r| r.get(0)).collect(),
        },
        v,
    ))
}

/// Objects already in each of `schemas` of the target (extension members left out), and whether
/// auth.users exists.
pub async fn occupied(su: &Client, schemas: &[String]) -> Result<(Vec<(String, i64)>, bool)> {
    let ext = |oid: &str| {
        format!("NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')")
    };
    let rows = su
        .query(
            &format!(
                "SELECT n.nspname::text, \
                   (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid AND {}) \
                 + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = n.oid AND {}) \
                 + (SELECT count(*) FROM pg_type t WHERE t.typnamespace = n.oid AND t.typtype IN ('e', 'd', 'r', 'm') AND {}) \
                 FROM pg_namespace n WHERE n.nspname = ANY($1) ORDER BY 1",
                ext("c.oid"),
                ext("p.oid"),
                ext("t.oid")
            ),
            &[&schemas],
        )
        .await
        .context("checking whether the target's schemas are empty")?;
    let users: bool = su
        .query_one("SELECT to_regclass('auth.users') IS NOT NULL", &[])
        .await
        .context("checking for auth.users on the target")?
        .get(0);
    Ok((
        rows.iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .filter(|(_, n)| *n > 0)
            .collect(),
        users,
    ))
}

/// Empties `schemas` and drops auth.users (what `--clean --yes` and a resumed import do).
pub async fn clean(su: &mut Client, schemas: &[String], auth_users: bool) -> Result<()> {
    let tx = su.transaction().await?;
    for s in schemas {
        let q: String = tx
            .query_one("SELECT format('%I', $1::text)", &[s])
            .await?
            .get(0);
        tx.batch_execute(&format!("DROP SCHEMA IF EXISTS {q} CASCADE"))
            .await
            .with_context(|| format!("dropping schema {s} on the target"))?;
        if s == "public" {
            // PostgreSQL 15's defaults for a new database's public schema.
            tx.batch_execute(
                "CREATE SCHEMA public AUTHORIZATION pg_database_owner; \
                 GRANT USAGE ON SCHEMA public TO PUBLIC; \
                 COMMENT ON SCHEMA public IS 'standard public schema'",
            )
            .await
            .context("recreating schema public")?;
        }
    }
    if auth_users {
        tx.batch_execute("DROP TABLE IF EXISTS auth.users CASCADE")
            .await
            .context("dropping auth.users on the target")?;
    }
    tx.commit().await.context("committing the clean-up")?;
    Ok(())
}

/// Applies the compatibility layer; returns the extensions that could not be created, with why.
pub async fn apply(
    su: &mut Client,
    schemas: &[String],
    extensions: &[(String, String)],
    make_users: bool,
) -> Result<Vec<(String, String)>> {
    let exts = serde_json::Value::Array(
        extensions
            .iter()
            .map(|(n, s)| serde_json::json!({"name": n, "schema": s}))
            .collect(),
    )
    .to_string();
    let tx = su.transaction().await?;
    tx.batch_execute(SQL)
        .await
        .context("defining the compatibility layer")?;
    let rows = tx
        .query(
            "SELECT * FROM pg_temp.stackctl_import_compat($1, $2::text::jsonb, $3)",
            &[&schemas, &exts, &make_users],
        )
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => anyhow::Error::new(crate::error::UserError::new(format!(
                "the compatibility layer failed: {}",
                db.message()
            )).hint("run `stackctl migrate --database-url URL` (or `stackctl up`) on the target first: the import builds on its role bootstrap")),
            None => anyhow::Error::new(e).context("applying the compatibility layer"),
        })?;
    tx.commit()
        .await
        .context("committing the compatibility layer")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The target's database name (role settings for one database are set in it).
pub async fn database(su: &Client) -> Result<String> {
    Ok(su
        .query_one("SELECT current_database()::text", &[])
        .await
        .context("reading the target's database name")?
        .get(0))
}

/// After the restore: the source's API roles, memberships and settings (`roles`, from
/// [`super::access::carry`]), the grants and revokes of the API roles and PUBLIC, the role
/// bootstrap again, ANALYZE.
pub async fn after_restore(
    su: &mut Client,
    roles: &[String],
    grants: &[String],
    passwords: &BTreeMap<String, String>,
) -> Result<()> {
    let tx = su.transaction().await?;
    for r in roles {
        tx.batch_execute(r)
            .await
            .with_context(|| format!("carrying the API roles to the target: {r}"))?;
    }
    for g in grants {
        tx.batch_execute(g)
            .await
            .with_context(|| format!("granting on the target: {g}"))?;
    }
    tx.commit()
        .await
        .context("committing the API roles' grants")?;
    bootstrap::run(su, passwords, Duration::from_secs(30)).await?;
    su.batch_execute("ANALYZE")
        .await
        .context("running ANALYZE on the target")?;
    Ok(())
}
