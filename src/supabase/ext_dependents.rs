//! Objects that depend on an extension the target lacks (issue 16, point 4). Found in the
//! source's catalog (`extension_dependents.sql`: pg_depend, plus function bodies that call the
//! extension's functions by name) or, for a dump file, in its table of contents' dependency lines
//! (which record types, operator classes and access methods, not function bodies). The preflight
//! names them and refuses the import, unless `--leave-out-missing-extensions` leaves them out of
//! the restore, with everything that depends on them, and lists them as not carried.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use super::inventory::{self, Inventory};
use super::managed;
use super::plan::{NotCarried, Plan, TargetInfo};
use super::toc::{self, Entry, Rules};
use crate::error::UserError;

/// The flag that leaves the dependents out (named in the refusal's hint).
pub const FLAG: &str = "--leave-out-missing-extensions";

/// An object of the source that needs an extension the target lacks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dependent {
    pub extension: String,
    /// `table`, `index`, `function`, `view`, `policy`, `trigger`, ...
    pub kind: String,
    pub name: String,
    /// What it uses, or what it depends on that is left out.
    pub reason: String,
    /// The source's `(catalog, oid)`; `(0, 0)` when read from a dump's table of contents.
    #[serde(default)]
    pub catalog: (u32, u32),
    /// Named in reports (parts named through their owner, like a view's rule, are not).
    pub shown: bool,
}

/// The source's extensions that the target cannot create (Supabase's own are never carried).
pub fn missing(inv: &Inventory, target: &TargetInfo) -> Vec<String> {
    inv.extensions
        .iter()
        .filter(|e| {
            !managed::EXTENSIONS.contains(&e.name.as_str())
                && !target.available_extensions.contains(&e.name)
        })
        .map(|e| e.name.clone())
        .collect()
}

/// The dependents of `missing` in the source's catalog, for the imported schemas.
pub async fn from_catalog(
    client: &impl GenericClient,
    imported: &[String],
    missing: &[String],
) -> Result<Vec<Dependent>> {
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            include_str!("extension_dependents.sql"),
            &[&missing, &imported],
        )
        .await
        .context("reading from the source what depends on the extensions the target lacks")?;
    Ok(rows
        .iter()
        .map(|r| Dependent {
            catalog: (r.get(0), r.get(1)),
            extension: r.get(2),
            kind: r.get(3),
            name: r.get(4),
            reason: r.get(5),
            shown: r.get(6),
        })
        .collect())
}

/// The dependents of `missing` in a dump's table of contents (read with `--verbose`): what its
/// dependency lines tie to the extension's entry. A dump made with `--schema` has no extension
/// entries, and so no record of these.
pub fn from_toc(list: &str, missing: &[String]) -> Vec<Dependent> {
    let mut out = Vec::new();
    for ext in missing {
        let d = toc::Dependents {
            objects: BTreeSet::new(),
            extensions: [ext.clone()].into(),
        };
        for e in toc::dependents(list, &d) {
            let (kind, name, shown) = describe(&e);
            out.push(Dependent {
                extension: ext.clone(),
                kind,
                name,
                reason: format!("depends on extension {ext} (the dump's dependency records)"),
                catalog: (0, 0),
                shown,
            });
        }
    }
    out
}

/// An entry as a report names it: kind, name, and whether it is named at all.
fn describe(e: &Entry) -> (String, String, bool) {
    let on_table = |tag: &str| match tag.split_once(' ') {
        Some((table, name)) => format!("{name} on {}.{table}", e.schema),
        None => format!("{}.{tag}", e.schema),
    };
    match e.desc.as_str() {
        "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "SEQUENCE" | "INDEX" | "TYPE" | "DOMAIN"
        | "FUNCTION" | "PROCEDURE" | "AGGREGATE" | "OPERATOR" | "FOREIGN TABLE" => (
            e.desc.to_lowercase(),
            format!("{}.{}", e.schema, e.tag),
            true,
        ),
        "CONSTRAINT" | "CHECK CONSTRAINT" => ("table constraint".into(), on_table(&e.tag), true),
        "FK CONSTRAINT" => ("foreign key".into(), on_table(&e.tag), true),
        "TRIGGER" | "POLICY" | "RULE" => (e.desc.to_lowercase(), on_table(&e.tag), true),
        _ => (
            e.desc.to_lowercase(),
            format!("{}.{}", e.schema, e.tag),
            false,
        ),
    }
}

/// Refuses the import naming every dependent, or (with [`FLAG`]) leaves them out of the
/// restore and lists them as not carried.
pub fn apply(plan: &mut Plan, deps: &[Dependent], leave_out: bool) -> Result<()> {
    // Only what a report names counts: a comment on the extension depends on it too.
    let shown: Vec<&Dependent> = deps.iter().filter(|d| d.shown).collect();
    if shown.is_empty() {
        return Ok(());
    }
    let extensions: BTreeSet<&str> = shown.iter().map(|d| d.extension.as_str()).collect();
    if !leave_out {
        let lines: Vec<String> = shown
            .iter()
            .map(|d| format!("  {} {} ({}): {}", d.kind, d.name, d.extension, d.reason))
            .collect();
        return Err(UserError::new(format!(
            "{} objects depend on extensions the target lacks ({}); the restore would stop at the first of them:\n{}",
            shown.len(),
            extensions.into_iter().collect::<Vec<_>>().join(", "),
            lines.join("\n")
        ))
        .hint(format!(
            "install the extensions in the target's postgres image, or pass {FLAG} to import everything else and list these objects as not carried"
        ))
        .into());
    }
    for d in &shown {
        plan.not_carried.push(NotCarried {
            kind: d.kind.clone(),
            name: d.name.clone(),
            reason: format!(
                "{}; extension {} is not available on the target ({FLAG})",
                d.reason, d.extension
            ),
        });
    }
    let drop = &mut plan.rules.drop_dependents;
    for d in deps {
        if d.catalog == (0, 0) {
            drop.extensions.insert(d.extension.clone());
        } else {
            drop.objects.insert(d.catalog);
        }
    }
    Ok(())
}

/// `(schema, kind)` -> a count, or `(schema, table)` names.
type BySchema = BTreeMap<(String, String), i64>;
type Names = BTreeSet<(String, String)>;

/// What the restore leaves out of `list` for the dependents: the count per `(schema, kind)` the
/// verification compares (kinds of `inventory::KINDS`), and the `(schema, table)`s whose rows
/// are not restored.
pub fn left_out(list: &str, rules: &Rules) -> (BySchema, Names) {
    let mut counts = BTreeMap::new();
    let mut tables = BTreeSet::new();
    for e in toc::dependents(list, &rules.drop_dependents) {
        if e.desc == "TABLE DATA" {
            tables.insert((e.schema.clone(), e.tag.clone()));
            continue;
        }
        let Some(kind) = inventory::kind_of_toc_entry(&e.desc) else {
            continue;
        };
        *counts.entry((e.schema, kind.to_string())).or_default() += 1;
    }
    (counts, tables)
}

/// The statements of `grants` that name none of the left-out relations and functions (a grant
/// on an object that was not restored would fail).
pub fn grants_kept(grants: &[String], list: &str, rules: &Rules) -> Vec<String> {
    let mut names = Vec::new();
    for e in toc::dependents(list, &rules.drop_dependents) {
        let (object, tail) = match e.desc.as_str() {
            "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "SEQUENCE" | "FOREIGN TABLE" => {
                (e.tag.as_str(), " ")
            }
            "FUNCTION" | "PROCEDURE" | "AGGREGATE" => {
                (e.tag.split('(').next().unwrap_or(&e.tag), "(")
            }
            _ => continue,
        };
        for s in [ident(&e.schema), quoted(&e.schema)] {
            for o in [ident(object), quoted(object)] {
                names.push(format!(" {s}.{o}{tail}"));
            }
        }
    }
    grants
        .iter()
        .filter(|g| {
            let g = format!("{g} ");
            !names.iter().any(|n| g.contains(n.as_str()))
        })
        .cloned()
        .collect()
}

/// An identifier as `format('%I')` prints it when it needs no quotes.
fn ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { s.to_string() } else { quoted(s) }
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_restore --list --verbose` of a source using vector (entry 2) and http (entry 3).
    const LIST: &str = "\
;
; Selected TOC Entries:
;
3; 3079 16713 EXTENSION - http 
;\tdepends on: 8
2; 3079 16385 EXTENSION - vector 
;\tdepends on: 8
3719; 0 0 COMMENT - EXTENSION vector 
;\tdepends on: 2
373; 1255 16769 FUNCTION app fetch(text) postgres
;\tdepends on: 9
372; 1255 16768 FUNCTION app nearest(extensions.vector) postgres
;\tdepends on: 2 2 8 9
225; 1259 16749 TABLE app docs postgres
;\tdepends on: 9 2 2 8
3720; 0 0 COMMENT app TABLE docs postgres
;\tdepends on: 225
226; 1259 16758 TABLE app notes postgres
;\tdepends on: 9
227; 1259 16770 VIEW app v postgres
;\tdepends on: 225 9
3709; 0 16749 TABLE DATA app docs postgres
;\tdepends on: 225
3710; 0 16758 TABLE DATA app notes postgres
;\tdepends on: 226
3558; 2606 16756 CONSTRAINT app docs docs_pkey postgres
;\tdepends on: 225
3556; 1259 16757 INDEX app docs_embedding_idx postgres
;\tdepends on: 225 2 8
3561; 2606 16763 FK CONSTRAINT app notes notes_doc_id_fkey postgres
;\tdepends on: 3558 226 225
";

    fn names(deps: &[Dependent]) -> Vec<String> {
        deps.iter()
            .filter(|d| d.shown)
            .map(|d| format!("{} {}", d.kind, d.name))
            .collect()
    }

    #[test]
    fn a_dumps_dependency_lines_give_the_dependents_of_an_extension() {
        let deps = from_toc(LIST, &["vector".to_string()]);
        assert_eq!(
            names(&deps),
            vec![
                "function app.nearest(extensions.vector)",
                "table app.docs",
                "view app.v",
                "table constraint docs_pkey on app.docs",
                "index app.docs_embedding_idx",
                "foreign key notes_doc_id_fkey on app.notes",
            ]
        );
        // A plpgsql body calling http_get() leaves no dependency record in a dump.
        assert!(from_toc(LIST, &["http".to_string()]).is_empty());
    }

    #[test]
    fn the_filter_leaves_out_the_dependents_and_what_hangs_on_them() {
        let mut rules = Rules::default();
        rules.imported.insert("app".into());
        // As found in the catalog: the table and the function (by catalog id).
        rules.drop_dependents.objects = [(1259, 16749), (1255, 16768)].into();
        let (list, _) = toc::filter(LIST, &rules);
        for gone in [
            "372; 1255",
            "225; 1259",
            "3720; 0",
            "227; 1259",
            "3709; 0",
            "3558; 2606",
            "3556; 1259",
            "3561; 2606",
        ] {
            assert!(
                list.contains(&format!(
                    "; left out (depends on an extension the target lacks): {gone}"
                )),
                "{gone} kept:\n{list}"
            );
        }
        for kept in ["\n373; 1255", "\n226; 1259", "\n3710; 0"] {
            assert!(list.contains(kept), "{kept} left out:\n{list}");
        }
        let (counts, tables) = left_out(LIST, &rules);
        assert_eq!(counts[&("app".into(), "indexes".into())], 2);
        assert_eq!(counts[&("app".into(), "views".into())], 1);
        assert_eq!(counts[&("app".into(), "functions".into())], 1);
        assert_eq!(tables, [("app".to_string(), "docs".to_string())].into());
        let grants = [
            "GRANT SELECT ON TABLE app.docs TO anon",
            "GRANT SELECT (body) ON TABLE app.docs TO anon",
            "GRANT SELECT ON TABLE app.docs_archive TO anon",
            "GRANT EXECUTE ON ROUTINE app.nearest(q extensions.vector) TO anon",
            "GRANT SELECT ON TABLE app.notes TO anon",
        ]
        .map(String::from);
        assert_eq!(
            grants_kept(&grants, LIST, &rules),
            vec![
                "GRANT SELECT ON TABLE app.docs_archive TO anon",
                "GRANT SELECT ON TABLE app.notes TO anon"
            ]
        );
    }

    #[test]
    fn without_the_flag_the_import_is_refused_naming_every_dependent() {
        let mut plan = super::super::plan::plan(
            &serde_json::from_value(serde_json::json!({
                "server_version": "17", "server_version_num": 170000, "database": "d",
                "size_bytes": 0, "imported": ["app"], "skipped": [], "extensions": [],
                "tables": [], "objects": {}, "publications": [], "event_triggers": [],
                "skipped_policies": [], "skipped_triggers": [], "policies": [],
                "foreign_keys_out": [], "auth_users": false, "auth_users_indexes": [],
                "auth_other_tables": [], "api_grants": []
            }))
            .unwrap(),
            &TargetInfo::default(),
            false,
        );
        let deps = vec![
            Dependent {
                extension: "vector".into(),
                kind: "table".into(),
                name: "app.docs".into(),
                reason: "column embedding: type extensions.vector".into(),
                catalog: (1259, 16749),
                shown: true,
            },
            Dependent {
                extension: "http".into(),
                kind: "function".into(),
                name: "app.fetch(text)".into(),
                reason: "its body calls http_get()".into(),
                catalog: (1255, 16769),
                shown: true,
            },
        ];
        let err = apply(&mut plan, &deps, false).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("2 objects depend on extensions the target lacks (http, vector)"));
        assert!(text.contains("table app.docs (vector): column embedding: type extensions.vector"));
        assert!(text.contains("function app.fetch(text) (http): its body calls http_get()"));
        assert!(crate::error::hint_of(&err).unwrap().contains(FLAG));
        assert!(plan.rules.drop_dependents.objects.is_empty());

        apply(&mut plan, &deps, true).unwrap();
        assert_eq!(plan.rules.drop_dependents.objects.len(), 2);
        assert!(
            plan.not_carried
                .iter()
                .any(|n| n.kind == "table" && n.name == "app.docs")
        );
    }
}
