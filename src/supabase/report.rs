//! Printing: the preflight report and the verification, as text tables or one JSON document.

use serde::Serialize;

use super::ext_dependents::Dependent;
use super::inventory::Inventory;
use super::plan::{NotCarried, Plan, TargetInfo};
use super::verify::Verification;

#[derive(Debug, Serialize)]
pub struct ExtensionRow {
    pub name: String,
    pub source_schema: String,
    pub on_target: bool,
    /// Objects of the source that need it (counted when it is missing on the target).
    pub dependents: usize,
}

#[derive(Debug, Serialize)]
pub struct Preflight {
    pub source: String,
    pub target: String,
    pub server_version: String,
    pub size_bytes: i64,
    /// Where the inventory comes from: a fresh snapshot, or the dump an earlier run kept.
    pub snapshot: String,
    pub schemas_imported: Vec<String>,
    pub schemas_skipped: Vec<String>,
    pub tables: usize,
    pub estimated_rows: i64,
    pub extensions: Vec<ExtensionRow>,
    pub policies: i64,
    pub triggers: i64,
    pub functions: i64,
    pub publications: Vec<String>,
    pub event_triggers: Vec<String>,
    pub auth_users: bool,
    /// Objects that need an extension the target lacks and stop the import (once left out,
    /// they are in `not_carried` instead).
    pub missing_extension_dependents: Vec<Dependent>,
    pub not_carried: Vec<NotCarried>,
}

fn sum(inv: &Inventory, kind: &str) -> i64 {
    inv.objects.values().filter_map(|k| k.get(kind)).sum()
}

pub fn preflight(
    inv: &Inventory,
    plan: &Plan,
    target: &TargetInfo,
    source: String,
    target_name: String,
    snapshot: String,
) -> Preflight {
    Preflight {
        source,
        target: target_name,
        server_version: inv.server_version.clone(),
        size_bytes: inv.size_bytes,
        snapshot,
        schemas_imported: inv.imported.clone(),
        schemas_skipped: inv.skipped.clone(),
        tables: inv.tables.len(),
        estimated_rows: inv.tables.iter().map(|t| t.estimate).sum(),
        extensions: inv
            .extensions
            .iter()
            .map(|e| ExtensionRow {
                name: e.name.clone(),
                source_schema: e.schema.clone(),
                on_target: target.available_extensions.contains(&e.name),
                dependents: inv
                    .extension_dependents
                    .iter()
                    .filter(|d| d.shown && d.extension == e.name)
                    .count(),
            })
            .collect(),
        policies: sum(inv, "policies") + inv.skipped_policies.len() as i64,
        triggers: sum(inv, "triggers") + inv.skipped_triggers.len() as i64,
        functions: sum(inv, "functions"),
        publications: inv.publications.clone(),
        event_triggers: inv.event_triggers.clone(),
        auth_users: inv.auth_users,
        missing_extension_dependents: if plan.rules.drop_dependents.objects.is_empty()
            && plan.rules.drop_dependents.extensions.is_empty()
        {
            inv.extension_dependents
                .iter()
                .filter(|d| d.shown)
                .cloned()
                .collect()
        } else {
            Vec::new()
        },
        not_carried: plan.not_carried.clone(),
    }
}

fn mb(bytes: i64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

pub fn print_preflight(p: &Preflight) {
    println!("preflight");
    println!(
        "  source      {} (PostgreSQL {}, {})",
        p.source,
        p.server_version,
        mb(p.size_bytes)
    );
    println!("  target      {}", p.target);
    println!("  snapshot    {}", p.snapshot);
    println!("  import      {}", list(&p.schemas_imported));
    println!(
        "  skip        {} (managed by Supabase)",
        list(&p.schemas_skipped)
    );
    let estimate = if p.estimated_rows > 0 {
        format!(" (about {} rows, planner estimate)", p.estimated_rows)
    } else {
        String::new()
    };
    println!(
        "  tables      {}{estimate}{}",
        p.tables,
        if p.auth_users {
            ", auth.users included"
        } else {
            ""
        }
    );
    let exts: Vec<String> = p
        .extensions
        .iter()
        .map(|e| {
            format!(
                "{} ({}{})",
                e.name,
                e.source_schema,
                if e.on_target {
                    String::new()
                } else if e.dependents > 0 {
                    format!(", missing on target; {} objects depend on it", e.dependents)
                } else {
                    ", missing on target".to_string()
                }
            )
        })
        .collect();
    println!("  extensions  {}", list(&exts));
    if !p.missing_extension_dependents.is_empty() {
        println!("  depend on extensions the target lacks (the import stops here):");
        for d in &p.missing_extension_dependents {
            println!("    {} {} ({}): {}", d.kind, d.name, d.extension, d.reason);
        }
    }
    println!(
        "  found       {} RLS policies, {} triggers, {} functions",
        p.policies, p.triggers, p.functions
    );
    println!("  publications    {}", list(&p.publications));
    println!("  event triggers  {}", list(&p.event_triggers));
    print_not_carried(&p.not_carried);
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

fn print_not_carried(n: &[NotCarried]) {
    if n.is_empty() {
        println!("not carried: nothing");
        return;
    }
    println!("not carried:");
    let w = n
        .iter()
        .map(|x| x.kind.len() + x.name.len() + 1)
        .max()
        .unwrap_or(0);
    for x in n {
        println!("  {:w$}  {}", format!("{} {}", x.kind, x.name), x.reason);
    }
}

pub fn print_verification(v: &Verification) {
    let mark = |ok: bool| if ok { "ok" } else { "DIFFERS" };
    println!("verification: rows");
    let w = v
        .tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("  {:w$}  {:>12}  {:>12}", "TABLE", "SOURCE", "TARGET");
    for t in &v.tables {
        let src = t
            .source_rows
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into());
        println!(
            "  {:w$}  {:>12}  {:>12}  {}",
            t.table,
            src,
            t.target_rows,
            mark(t.ok)
        );
    }
    println!("verification: sequences (next value above the column's maximum)");
    for s in &v.sequences {
        let max = s
            .column_max
            .map(|n| n.to_string())
            .unwrap_or_else(|| "empty".into());
        println!(
            "  {} ({}): last value {}, max {}  {}",
            s.sequence,
            s.column,
            s.last_value,
            max,
            mark(s.ok)
        );
    }
    println!("verification: objects per schema (source / expected / target)");
    let mut last = String::new();
    for o in &v.objects {
        if o.schema != last {
            let cells: Vec<String> = v
                .objects
                .iter()
                .filter(|x| x.schema == o.schema)
                .map(|x| {
                    format!(
                        "{} {}/{}/{}{}",
                        x.kind,
                        x.source,
                        x.expected,
                        x.target,
                        if x.ok { "" } else { " DIFFERS" }
                    )
                })
                .collect();
            println!("  {}: {}", o.schema, cells.join(", "));
            last = o.schema.clone();
        }
    }
    match &v.access {
        Some(rows) => {
            let differ: Vec<_> = rows.iter().filter(|c| !c.ok).collect();
            let privileges = rows.iter().filter(|c| c.what.contains(" to ")).count();
            println!(
                "verification: access (roles, memberships, settings; privileges of the API roles and PUBLIC on {privileges} object-role pairs)"
            );
            for c in rows.iter().filter(|c| !c.what.contains(" to ")) {
                println!(
                    "  {}: {}  {}",
                    c.what,
                    if c.source.is_empty() {
                        "(none)"
                    } else {
                        &c.source
                    },
                    mark(c.ok)
                );
            }
            for c in differ.iter().filter(|c| c.what.contains(" to ")) {
                println!(
                    "  {}: source {}, target {}  DIFFERS",
                    c.what,
                    if c.source.is_empty() {
                        "(nothing)"
                    } else {
                        &c.source
                    },
                    if c.target.is_empty() {
                        "(nothing)"
                    } else {
                        &c.target
                    }
                );
            }
            if !differ.iter().any(|c| c.what.contains(" to ")) {
                println!("  privileges: all {privileges} as on the source  ok");
            }
        }
        None => println!(
            "verification: access not compared (the source is a dump file, which holds no roles or settings)"
        ),
    }
    print_not_carried(&v.not_carried);
}
