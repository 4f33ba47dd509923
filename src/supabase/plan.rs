//! What an import carries and what it cannot, decided from the source's inventory and what the
//! target offers. Pure: the same inputs always give the same list.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::inventory::Inventory;
use super::managed;
use super::toc::Rules;

/// Something of the source the target will not have, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotCarried {
    pub kind: String,
    pub name: String,
    pub reason: String,
}

/// What the target offers.
#[derive(Debug, Clone, Default)]
pub struct TargetInfo {
    pub available_extensions: BTreeSet<String>,
    pub roles: BTreeSet<String>,
}

#[derive(Debug)]
pub struct Plan {
    pub not_carried: Vec<NotCarried>,
    /// Extensions to create, each with its schema.
    pub extensions: Vec<(String, String)>,
    pub rules: Rules,
    /// `(schema, kind)` -> how many objects the restore leaves out because they depend on an
    /// extension the target lacks (filled once the archive's list is read).
    pub dependents_left_out: BTreeMap<(String, String), i64>,
}

fn nc(kind: &str, name: String, reason: impl Into<String>) -> NotCarried {
    NotCarried {
        kind: kind.into(),
        name,
        reason: reason.into(),
    }
}

pub fn plan(inv: &Inventory, target: &TargetInfo, skip_auth_users: bool) -> Plan {
    let mut out = Vec::new();
    let mut extensions = Vec::new();
    let imported: BTreeSet<String> = inv.imported.iter().cloned().collect();
    for e in &inv.extensions {
        if managed::EXTENSIONS.contains(&e.name.as_str()) {
            if e.name != "plpgsql" {
                out.push(nc(
                    "extension",
                    e.name.clone(),
                    "part of Supabase's own services",
                ));
            }
        } else if !target.available_extensions.contains(&e.name) {
            out.push(nc(
                "extension",
                e.name.clone(),
                "not available on the target (install its package in the postgres image)",
            ));
        } else {
            let schema = if imported.contains(&e.schema) {
                e.schema.clone()
            } else {
                "extensions".to_string()
            };
            extensions.push((e.name.clone(), schema));
        }
    }
    for p in &inv.skipped_policies {
        out.push(nc(
            "policy",
            format!("{} on {}.{}", p.name, p.schema, p.table),
            format!(
                "schema {} is managed by Supabase; its tables are not imported",
                p.schema
            ),
        ));
    }
    for t in &inv.skipped_triggers {
        out.push(nc(
            "trigger",
            format!("{} on {}.{}", t.name, t.schema, t.table),
            format!(
                "schema {} is managed by Supabase; nothing in the stack writes to that table, so {} would never fire",
                t.schema,
                if t.detail.is_empty() { "the trigger" } else { &t.detail }
            ),
        ));
    }
    let mut drop_fks = BTreeSet::new();
    for fk in &inv.foreign_keys_out {
        let reason = if fk.detail == "auth.users" {
            if !skip_auth_users {
                continue;
            }
            "it references auth.users, whose rows --skip-auth-users leaves out".to_string()
        } else {
            format!("it references {}, which is not imported", fk.detail)
        };
        drop_fks.insert((fk.schema.clone(), format!("{} {}", fk.table, fk.name)));
        out.push(nc(
            "foreign key",
            format!("{} on {}.{}", fk.name, fk.schema, fk.table),
            reason,
        ));
    }
    let mut drop_policies = BTreeSet::new();
    for p in &inv.policies {
        let missing: Vec<&str> = p
            .detail
            .split(',')
            .filter(|r| !r.is_empty() && !target.roles.contains(*r))
            .collect();
        if !missing.is_empty() {
            drop_policies.insert((p.schema.clone(), format!("{} {}", p.table, p.name)));
            out.push(nc(
                "policy",
                format!("{} on {}.{}", p.name, p.schema, p.table),
                format!("the target has no role {}", missing.join(", ")),
            ));
        }
    }
    for p in &inv.publications {
        if managed::is_realtime_publication(p) {
            out.push(nc(
                "publication",
                p.clone(),
                "Supabase Realtime's publication; the stack has no Realtime",
            ));
        }
    }
    for e in &inv.event_triggers {
        out.push(nc(
            "event trigger",
            e.clone(),
            "event triggers need a superuser to create and serve Supabase's own services",
        ));
    }
    Plan {
        not_carried: out,
        extensions,
        rules: Rules {
            imported,
            auth_users_data: !skip_auth_users,
            auth_users_indexes: Some(inv.auth_users_indexes.iter().cloned().collect()),
            drop_fks,
            drop_policies,
            drop_dependents: Default::default(),
        },
        dependents_left_out: BTreeMap::new(),
    }
}

/// pg_dump's selection (as patterns): with `--schema`, the named schemas plus `auth` (for
/// auth.users); otherwise everything but the skipped schemas, `auth` excepted. The other tables of
/// `auth` are excluded separately (`Inventory::auth_other_tables`).
#[derive(Debug, PartialEq)]
pub struct DumpSelection {
    pub include: Vec<String>,
    pub exclude_schemas: Vec<String>,
    pub exclude_data: Vec<String>,
}

/// A name as a pg_dump pattern that matches only itself.
fn literal(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn dump_selection(inv: &Inventory, explicit: bool, skip_auth_users: bool) -> DumpSelection {
    let mut include = Vec::new();
    let mut exclude_schemas = Vec::new();
    if explicit {
        include = inv.imported.iter().map(|s| literal(s)).collect();
        if inv.auth_users {
            include.push(literal("auth"));
        }
    } else {
        exclude_schemas = inv
            .skipped
            .iter()
            .filter(|s| *s != "auth" || !inv.auth_users)
            .map(|s| literal(s))
            .collect();
    }
    DumpSelection {
        include,
        exclude_schemas,
        exclude_data: if skip_auth_users {
            vec![format!("{}.{}", literal("auth"), literal("users"))]
        } else {
            Vec::new()
        },
    }
}

/// How many objects of `kind` in `schema` the plan leaves out (for the expected counts).
pub fn left_out(plan: &Plan, schema: &str, kind: &str) -> i64 {
    let planned = match kind {
        "policies" => plan
            .rules
            .drop_policies
            .iter()
            .filter(|(s, _)| s == schema)
            .count() as i64,
        _ => 0,
    };
    planned
        + plan
            .dependents_left_out
            .get(&(schema.to_string(), kind.to_string()))
            .copied()
            .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(imported: &[&str], skipped: &[&str], auth_users: bool) -> Inventory {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Inventory {
            server_version: String::new(),
            server_version_num: 170000,
            database: String::new(),
            size_bytes: 0,
            imported: v(imported),
            skipped: v(skipped),
            extensions: Vec::new(),
            tables: Vec::new(),
            objects: Default::default(),
            publications: vec!["supabase_realtime".into(), "mine".into()],
            event_triggers: Vec::new(),
            skipped_policies: Vec::new(),
            skipped_triggers: Vec::new(),
            policies: Vec::new(),
            foreign_keys_out: vec![super::super::inventory::Named {
                schema: "app".into(),
                table: "todos".into(),
                name: "todos_user_id_fkey".into(),
                detail: "auth.users".into(),
            }],
            auth_users,
            auth_users_indexes: Vec::new(),
            auth_other_tables: Vec::new(),
            api_grants: Vec::new(),
            access: None,
            extension_dependents: Vec::new(),
        }
    }

    #[test]
    fn the_dump_keeps_auth_for_its_users_and_quotes_names() {
        let i = inv(&["app", "MyApp"], &["auth", "storage"], true);
        let all = dump_selection(&i, false, false);
        assert_eq!(all.include, Vec::<String>::new());
        assert_eq!(all.exclude_schemas, vec!["\"storage\""]);
        let some = dump_selection(&i, true, true);
        assert_eq!(some.include, vec!["\"app\"", "\"MyApp\"", "\"auth\""]);
        assert_eq!(some.exclude_data, vec!["\"auth\".\"users\""]);
        let no_auth = dump_selection(&inv(&["app"], &["auth"], false), false, false);
        assert_eq!(no_auth.exclude_schemas, vec!["\"auth\""]);
    }

    #[test]
    fn foreign_keys_to_auth_users_go_only_with_skip_auth_users() {
        let i = inv(&["app"], &["auth"], true);
        let t = TargetInfo::default();
        let keep = plan(&i, &t, false);
        assert!(keep.rules.drop_fks.is_empty());
        assert_eq!(
            keep.not_carried
                .iter()
                .filter(|n| n.kind == "publication")
                .count(),
            1
        );
        let skip = plan(&i, &t, true);
        assert!(
            skip.rules
                .drop_fks
                .contains(&("app".to_string(), "todos todos_user_id_fkey".to_string()))
        );
        assert!(
            skip.not_carried
                .iter()
                .any(|n| n.name == "todos_user_id_fkey on app.todos")
        );
    }
}
