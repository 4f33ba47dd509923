//! Verification: the target against the source's inventory (taken in the dump's snapshot).
//! Exact row counts per table, every owned sequence at or above its column's maximum, and
//! policies, functions, triggers, indexes and views per schema; and access as the API sees it
//! (the Supabase roles' attributes and memberships, the API roles' settings, the privileges of
//! the API roles and PUBLIC on every imported object: [`super::access`]). Any difference fails the
//! import, unless a not-carried entry explains it.

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Client;

use super::access::{self, Compared};
use super::inventory::{self, Inventory, KINDS};
use super::plan::{self, NotCarried, Plan};

#[derive(Debug, Serialize)]
pub struct TableRow {
    pub table: String,
    pub source_rows: Option<i64>,
    pub target_rows: i64,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct SequenceRow {
    pub sequence: String,
    pub column: String,
    pub last_value: i64,
    pub is_called: bool,
    pub column_max: Option<i64>,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct ObjectRow {
    pub schema: String,
    pub kind: String,
    pub source: i64,
    /// The source's count minus what the plan leaves out.
    pub expected: i64,
    pub target: i64,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub tables: Vec<TableRow>,
    pub sequences: Vec<SequenceRow>,
    pub objects: Vec<ObjectRow>,
    /// Roles, memberships, settings and privileges compared; `None` when the source is a dump
    /// file (its roles and settings are not in it).
    pub access: Option<Vec<Compared>>,
    pub not_carried: Vec<NotCarried>,
}

pub async fn verify(target: &Client, inv: &Inventory, plan: &Plan) -> Result<Verification> {
    let counts = inventory::count_rows(target, &inv.tables).await?;
    let tables: Vec<TableRow> = inv
        .tables
        .iter()
        .zip(counts)
        .map(|(t, n)| TableRow {
            table: format!("{}.{}", t.schema, t.name),
            source_rows: t.rows,
            target_rows: n,
            ok: t.rows.is_none_or(|s| s == n),
        })
        .collect();

    let mut schemas = inv.imported.clone();
    schemas.push("auth".into());
    let seqs = target
        .query(
            "SELECT format('%I.%I', sn.nspname, s.relname), format('%I.%I', tn.nspname, t.relname), \
                    format('%I', a.attname), sn.nspname || '.' || s.relname, tn.nspname || '.' || t.relname || '.' || a.attname \
               FROM pg_class s JOIN pg_namespace sn ON sn.oid = s.relnamespace \
               JOIN pg_sequence q ON q.seqrelid = s.oid \
               JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid \
                               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
               JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
              WHERE s.relkind = 'S' AND sn.nspname = ANY($1) AND q.seqincrement > 0 \
              ORDER BY 4",
            &[&schemas],
        )
        .await
        .context("listing the target's sequences")?;
    let mut sequences = Vec::new();
    for r in &seqs {
        let (seq, table, col): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let row = target
            .query_one(
                &format!("SELECT last_value, is_called, (SELECT max({col})::bigint FROM {table}) FROM {seq}"),
                &[],
            )
            .await
            .with_context(|| format!("reading sequence {seq}"))?;
        let (last, called, max): (i64, bool, Option<i64>) = (row.get(0), row.get(1), row.get(2));
        // The next value must be above the maximum: last_value when not yet called, else last_value + increment.
        let ok = max.is_none_or(|m| if called { last >= m } else { last > m });
        sequences.push(SequenceRow {
            sequence: r.get(3),
            column: r.get(4),
            last_value: last,
            is_called: called,
            column_max: max,
            ok,
        });
    }

    let tgt = inventory::object_counts(target, &inv.imported).await?;
    let mut objects = Vec::new();
    for (schema, kinds) in &inv.objects {
        for kind in KINDS {
            let source = kinds.get(*kind).copied().unwrap_or(0);
            let expected = source - plan::left_out(plan, schema, kind);
            let got = tgt
                .get(schema)
                .and_then(|k| k.get(*kind))
                .copied()
                .unwrap_or(0);
            objects.push(ObjectRow {
                schema: schema.clone(),
                kind: kind.to_string(),
                source,
                expected,
                target: got,
                ok: expected == got,
            });
        }
    }
    let mut not_carried = plan.not_carried.clone();
    let access = match &inv.access {
        Some(source) => {
            let target = access::read(target, &inv.imported).await?;
            for (role, attribute, reason) in access::not_carried_attributes(source, &target) {
                not_carried.push(NotCarried {
                    kind: "role attribute".into(),
                    name: format!("{attribute} of {role}"),
                    reason,
                });
            }
            Some(access::compare(source, &target))
        }
        None => None,
    };
    let ok = tables.iter().all(|t| t.ok)
        && sequences.iter().all(|s| s.ok)
        && objects.iter().all(|o| o.ok)
        && access.iter().flatten().all(|c| c.ok);
    Ok(Verification {
        ok,
        tables,
        sequences,
        objects,
        access,
        not_carried,
    })
}
