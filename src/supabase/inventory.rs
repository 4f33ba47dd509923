//! What a database holds, read from its catalog: the source's inventory (taken inside the very
//! snapshot pg_dump dumps) and the same counts on the target for verification.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use super::{access, managed};

/// A table whose rows are counted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub schema: String,
    pub name: String,
    /// `schema.name`, quoted for SQL.
    pub sql_name: String,
    /// The planner's estimate (for the preflight report).
    pub estimate: i64,
    /// Exact count inside the dump's snapshot (filled while pg_dump runs).
    pub rows: Option<i64>,
}

/// `schema.table name`, for policies and triggers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Named {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// Policies: their roles; triggers: their function; foreign keys: the table referenced.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub schema: String,
    pub version: String,
}

/// Objects of one kind in one schema.
pub type Counts = BTreeMap<String, BTreeMap<String, i64>>;

/// The kinds counted per schema.
pub const KINDS: &[&str] = &["policies", "functions", "triggers", "indexes", "views"];

/// The counted kind (one of [`KINDS`]) of a table-of-contents entry's description, if counted.
pub fn kind_of_toc_entry(desc: &str) -> Option<&'static str> {
    Some(match desc {
        "POLICY" => "policies",
        "FUNCTION" | "PROCEDURE" | "AGGREGATE" => "functions",
        "TRIGGER" => "triggers",
        "INDEX" | "CONSTRAINT" => "indexes",
        "VIEW" | "MATERIALIZED VIEW" => "views",
        _ => return None,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inventory {
    pub server_version: String,
    pub server_version_num: i32,
    pub database: String,
    pub size_bytes: i64,
    pub imported: Vec<String>,
    pub skipped: Vec<String>,
    pub extensions: Vec<Extension>,
    pub tables: Vec<Table>,
    /// schema -> kind -> count, for the imported schemas.
    pub objects: Counts,
    pub publications: Vec<String>,
    pub event_triggers: Vec<String>,
    /// Policies on tables of skipped schemas (e.g. storage.objects).
    pub skipped_policies: Vec<Named>,
    /// User triggers on tables of skipped schemas (e.g. on auth.users).
    pub skipped_triggers: Vec<Named>,
    /// Policies in imported schemas, with their roles.
    pub policies: Vec<Named>,
    /// Foreign keys from imported tables to tables outside the imported schemas.
    pub foreign_keys_out: Vec<Named>,
    /// Whether the source has auth.users, and its index names.
    pub auth_users: bool,
    pub auth_users_indexes: Vec<String>,
    /// Other tables of schema auth (excluded from the dump).
    pub auth_other_tables: Vec<String>,
    /// Statements that give the API roles and PUBLIC what they have on the source (REVOKEs of
    /// the built-in defaults the source lacks, GRANTs, default privileges).
    pub api_grants: Vec<String>,
    /// Roles, memberships, settings and privileges as the API sees them (not known for a dump
    /// file: then nothing of it is compared).
    #[serde(default)]
    pub access: Option<access::Access>,
    /// Objects that depend on extensions the target lacks (`ext_dependents`).
    #[serde(default)]
    pub extension_dependents: Vec<super::ext_dependents::Dependent>,
}

const NOT_EXT_MEMBER: &str =
    "NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')";

fn not_ext(oid: &str) -> String {
    NOT_EXT_MEMBER.replace("{oid}", oid)
}

/// Checks the connected role can read every row (pg_dump runs with row_security off).
pub async fn check_reader(client: &impl GenericClient, who: &str) -> Result<()> {
    let row = client
        .query_one(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .context("checking the source role")?;
    if !row.get::<_, bool>(0) {
        return Err(crate::error::UserError::new(format!(
            "{who} has neither SUPERUSER nor BYPASSRLS: row-level security would hide rows from the dump"
        ))
        .hint("connect as `postgres` (on Supabase it has BYPASSRLS)")
        .into());
    }
    Ok(())
}

/// Reads the inventory (without exact row counts) for the given selection of schemas.
pub async fn collect(
    client: &impl GenericClient,
    only: &[String],
    with_auth_users: bool,
) -> Result<Inventory> {
    let q = |what: &'static str| {
        move |e| anyhow::Error::new(e).context(format!("reading {what} from the source"))
    };
    let head = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, \
             current_database()::text, pg_database_size(current_database())",
            &[],
        )
        .await
        .map_err(q("the server version"))?;

    let mut imported = Vec::new();
    let mut skipped = Vec::new();
    let rows = client
        .query(
            "SELECT n.nspname::text, EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass \
                    AND d.objid = n.oid AND d.deptype = 'e') \
               FROM pg_namespace n \
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)' \
              ORDER BY 1",
            &[],
        )
        .await
        .map_err(q("the schemas"))?;
    let all: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for r in &rows {
        let name: String = r.get(0);
        let ext_owned: bool = r.get(1);
        if managed::is_managed_schema(&name) || ext_owned {
            skipped.push(name);
        } else if only.is_empty() || only.contains(&name) {
            imported.push(name);
        }
    }
    for s in only {
        if !all.contains(s) {
            return Err(
                crate::error::UserError::new(format!("the source has no schema {s}"))
                    .hint(format!("schemas it has: {}", all.join(", ")))
                    .into(),
            );
        }
        if !imported.contains(s) {
            return Err(crate::error::UserError::new(format!(
                "schema {s} is managed by Supabase (or by an extension) and is not imported"
            ))
            .hint("see docs/import-supabase.md for what is carried from those schemas")
            .into());
        }
    }

    let extensions = client
        .query(
            "SELECT e.extname::text, n.nspname::text, e.extversion FROM pg_extension e \
               JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1",
            &[],
        )
        .await
        .map_err(q("the extensions"))?
        .iter()
        .map(|r| Extension {
            name: r.get(0),
            schema: r.get(1),
            version: r.get(2),
        })
        .collect();

    let tables = client
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, format('%I.%I', n.nspname, c.relname), \
                        greatest(c.reltuples, 0)::bigint \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind = 'r' AND {} \
                    AND (n.nspname = ANY($1) OR (n.nspname = 'auth' AND c.relname = 'users' AND $2)) \
                  ORDER BY 1, 2",
                not_ext("c.oid")
            ),
            &[&imported, &with_auth_users],
        )
        .await
        .map_err(q("the tables"))?
        .iter()
        .map(|r| Table {
            schema: r.get(0),
            name: r.get(1),
            sql_name: r.get(2),
            estimate: r.get(3),
            rows: None,
        })
        .collect();

    let objects = object_counts(client, &imported).await?;

    let named = |rows: Vec<tokio_postgres::Row>| -> Vec<Named> {
        rows.iter()
            .map(|r| Named {
                schema: r.get(0),
                table: r.get(1),
                name: r.get(2),
                detail: r.get(3),
            })
            .collect()
    };
    let policies_sql = "SELECT n.nspname::text, c.relname::text, p.polname::text, \
                coalesce((SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE oid = ANY(p.polroles)), '') \
           FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = ANY($1) ORDER BY 1, 2, 3";
    let skipped_policies = named(
        client
            .query(policies_sql, &[&skipped])
            .await
            .map_err(q("the policies"))?,
    );
    let policies = named(
        client
            .query(policies_sql, &[&imported])
            .await
            .map_err(q("the policies"))?,
    );
    let skipped_triggers = named(
        client
            .query(
                "SELECT n.nspname::text, c.relname::text, t.tgname::text, format('%I.%I()', fn.nspname, f.proname) \
                   FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                   JOIN pg_proc f ON f.oid = t.tgfoid JOIN pg_namespace fn ON fn.oid = f.pronamespace \
                  WHERE NOT t.tgisinternal AND n.nspname = ANY($1) AND NOT (fn.nspname = ANY($1)) \
                  ORDER BY 1, 2, 3",
                &[&skipped],
            )
            .await
            .map_err(q("the triggers"))?,
    );
    let foreign_keys_out = named(
        client
            .query(
                "SELECT n.nspname::text, c.relname::text, con.conname::text, format('%I.%I', rn.nspname, r.relname) \
                   FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                   JOIN pg_class r ON r.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace \
                  WHERE con.contype = 'f' AND n.nspname = ANY($1) AND NOT (rn.nspname = ANY($1)) \
                  ORDER BY 1, 2, 3",
                &[&imported],
            )
            .await
            .map_err(q("the foreign keys"))?,
    );
    let publications = client
        .query("SELECT pubname::text FROM pg_publication ORDER BY 1", &[])
        .await
        .map_err(q("the publications"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let event_triggers = client
        .query("SELECT evtname::text FROM pg_event_trigger ORDER BY 1", &[])
        .await
        .map_err(q("the event triggers"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let auth_users_indexes: Vec<String> = client
        .query(
            "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
              WHERE x.indrelid = to_regclass('auth.users') ORDER BY 1",
            &[],
        )
        .await
        .map_err(q("the indexes of auth.users"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let auth_users = client
        .query_one("SELECT to_regclass('auth.users') IS NOT NULL", &[])
        .await
        .map_err(q("auth.users"))?
        .get(0);
    let auth_other_tables = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = 'auth' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relname <> 'users' ORDER BY 1",
            &[],
        )
        .await
        .map_err(q("the tables of schema auth"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Types in function signatures are printed schema-qualified (the statements are replayed by
    // a session whose search_path differs); the caller's search_path is put back after.
    let search_path: String = client
        .query_one(
            "SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog', false)",
            &[],
        )
        .await
        .map_err(q("the search_path"))?
        .get(0);
    let api_grants = client
        .query(include_str!("api_grants.sql"), &[&imported, &access::API])
        .await
        .map_err(q("the API roles' grants"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let access = access::read(client, &imported).await?;
    client
        .query_one(
            "SELECT set_config('search_path', $1, false)",
            &[&search_path],
        )
        .await
        .map_err(q("the search_path"))?;

    Ok(Inventory {
        server_version: head.get(0),
        server_version_num: head.get(1),
        database: head.get(2),
        size_bytes: head.get(3),
        imported,
        skipped,
        extensions,
        tables,
        objects,
        publications,
        event_triggers,
        skipped_policies,
        skipped_triggers,
        policies,
        foreign_keys_out,
        auth_users,
        auth_users_indexes,
        auth_other_tables,
        api_grants,
        access: Some(access),
        extension_dependents: Vec::new(),
    })
}

/// Policies, functions, triggers, indexes and views per schema (extension members left out).
pub async fn object_counts(client: &impl GenericClient, schemas: &[String]) -> Result<Counts> {
    let sql = format!(
        "WITH s AS (SELECT oid, nspname::text AS nspname FROM pg_namespace WHERE nspname = ANY($1)) \
         SELECT s.nspname, 'policies', count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
                JOIN s ON s.oid = c.relnamespace GROUP BY 1 \
         UNION ALL SELECT s.nspname, 'functions', count(*) FROM pg_proc p JOIN s ON s.oid = p.pronamespace \
                WHERE {} GROUP BY 1 \
         UNION ALL SELECT s.nspname, 'triggers', count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                JOIN s ON s.oid = c.relnamespace WHERE NOT t.tgisinternal GROUP BY 1 \
         UNION ALL SELECT s.nspname, 'indexes', count(*) FROM pg_class c JOIN s ON s.oid = c.relnamespace \
                WHERE c.relkind IN ('i', 'I') AND {} GROUP BY 1 \
         UNION ALL SELECT s.nspname, 'views', count(*) FROM pg_class c JOIN s ON s.oid = c.relnamespace \
                WHERE c.relkind IN ('v', 'm') AND {} GROUP BY 1",
        not_ext("p.oid"),
        not_ext("c.oid"),
        not_ext("c.oid")
    );
    let mut out: Counts = schemas
        .iter()
        .map(|s| {
            (
                s.clone(),
                KINDS.iter().map(|k| (k.to_string(), 0)).collect(),
            )
        })
        .collect();
    for r in client
        .query(&sql, &[&schemas])
        .await
        .context("counting policies, functions, triggers, indexes and views")?
    {
        let (s, k, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        out.entry(s).or_default().insert(k, n);
    }
    Ok(out)
}

/// Exact row counts, one `count(*)` per table.
pub async fn count_rows(client: &impl GenericClient, tables: &[Table]) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let row = client
            .query_one(&format!("SELECT count(*) FROM ONLY {}", t.sql_name), &[])
            .await
            .with_context(|| format!("counting the rows of {}", t.sql_name))?;
        out.push(row.get(0));
    }
    Ok(out)
}

/// The inventory of a dump file, from its table of contents alone: no row counts (a dump does
/// not record them), no grants, no foreign-key targets; object counts by entry kind.
pub fn from_toc(list: &str, only: &[String], with_auth_users: bool) -> Result<Inventory> {
    use super::toc;
    let version = list
        .lines()
        .find_map(|l| {
            l.trim_start_matches(';')
                .trim_start()
                .strip_prefix("Dumped from database version: ")
        })
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let (major, minor) =
        super::source::parse_client_version(&format!("x x {version}")).unwrap_or((0, 0));
    let entries = toc::entries(list);
    let mut all: Vec<String> = entries
        .iter()
        .map(|e| {
            if e.desc == "SCHEMA" {
                e.tag.clone()
            } else {
                e.schema.clone()
            }
        })
        .filter(|s| s != "-")
        .collect();
    all.sort();
    all.dedup();
    let (skipped, imported): (Vec<String>, Vec<String>) =
        all.into_iter().partition(|s| managed::is_managed_schema(s));
    let imported: Vec<String> = imported
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(s))
        .collect();
    let quote = |s: &str| postgres_protocol::escape::escape_identifier(s);
    let mut inv = Inventory {
        server_version: version,
        server_version_num: (major * 10000 + minor) as i32,
        database: String::new(),
        size_bytes: 0,
        imported: imported.clone(),
        skipped: skipped.clone(),
        extensions: Vec::new(),
        tables: Vec::new(),
        objects: imported
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    KINDS.iter().map(|k| (k.to_string(), 0)).collect(),
                )
            })
            .collect(),
        publications: Vec::new(),
        event_triggers: Vec::new(),
        skipped_policies: Vec::new(),
        skipped_triggers: Vec::new(),
        policies: Vec::new(),
        foreign_keys_out: Vec::new(),
        auth_users: false,
        auth_users_indexes: Vec::new(),
        auth_other_tables: Vec::new(),
        api_grants: Vec::new(),
        access: None,
        extension_dependents: Vec::new(),
    };
    let split = |tag: &str| -> (String, String) {
        let (t, n) = tag.split_once(' ').unwrap_or((tag, ""));
        (t.to_string(), n.to_string())
    };
    for e in &entries {
        let in_imported = imported.contains(&e.schema);
        let in_skipped = skipped.contains(&e.schema);
        match e.desc.as_str() {
            "EXTENSION" => inv.extensions.push(Extension {
                name: e.tag.clone(),
                schema: "extensions".into(),
                version: String::new(),
            }),
            "PUBLICATION" => inv.publications.push(e.tag.clone()),
            "EVENT TRIGGER" => inv.event_triggers.push(e.tag.clone()),
            "TABLE" if e.schema == "auth" && e.tag == "users" => inv.auth_users = true,
            "TABLE DATA"
                if in_imported || (e.schema == "auth" && e.tag == "users" && with_auth_users) =>
            {
                inv.tables.push(Table {
                    schema: e.schema.clone(),
                    name: e.tag.clone(),
                    sql_name: format!("{}.{}", quote(&e.schema), quote(&e.tag)),
                    estimate: 0,
                    rows: None,
                })
            }
            "POLICY" | "TRIGGER" if in_skipped => {
                let (table, name) = split(&e.tag);
                let n = Named {
                    schema: e.schema.clone(),
                    table,
                    name,
                    detail: String::new(),
                };
                if e.desc == "POLICY" {
                    inv.skipped_policies.push(n)
                } else {
                    inv.skipped_triggers.push(n)
                }
            }
            _ => {}
        }
        if in_imported {
            let Some(kind) = kind_of_toc_entry(&e.desc) else {
                continue;
            };
            *inv.objects
                .entry(e.schema.clone())
                .or_default()
                .entry(kind.into())
                .or_default() += 1;
        }
    }
    Ok(inv)
}

/// Records the foreign keys (from a dump's SQL) that leave the imported schemas.
pub fn add_foreign_keys(inv: &mut Inventory, fks: &[(String, String, String)]) {
    for (schema, tag, target) in fks {
        let target_schema = target.split('.').next().unwrap_or("");
        if !inv.imported.contains(schema) || inv.imported.iter().any(|s| s == target_schema) {
            continue;
        }
        let (table, name) = tag.split_once(' ').unwrap_or((tag, ""));
        inv.foreign_keys_out.push(Named {
            schema: schema.clone(),
            table: table.to_string(),
            name: name.to_string(),
            detail: target.clone(),
        });
    }
}
