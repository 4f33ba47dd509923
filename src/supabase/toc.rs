//! The archive's table of contents (`pg_restore -l`): parsing its lines and choosing what to
//! restore. Pure, so the rules are unit-tested; the result is fed back with `pg_restore -L`.
//! The list is read with `--verbose`, whose `;\tdepends on: ID...` lines give the entries'
//! dependencies: what depends on a left-out object is left out with it.

use std::collections::{BTreeMap, BTreeSet};

/// Entry kinds, longest first so that `TABLE DATA` is not read as `TABLE`.
const DESCS: &[&str] = &[
    "PUBLICATION TABLES IN SCHEMA",
    "MATERIALIZED VIEW DATA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "FOREIGN DATA WRAPPER",
    "TEXT SEARCH TEMPLATE",
    "DATABASE PROPERTIES",
    "PROCEDURAL LANGUAGE",
    "TEXT SEARCH PARSER",
    "SUBSCRIPTION TABLE",
    "SEQUENCE OWNED BY",
    "PUBLICATION TABLE",
    "MATERIALIZED VIEW",
    "CHECK CONSTRAINT",
    "OPERATOR FAMILY",
    "STATISTICS DATA",
    "OPERATOR CLASS",
    "SECURITY LABEL",
    "FOREIGN SERVER",
    "BLOB METADATA",
    "EVENT TRIGGER",
    "ACCESS METHOD",
    "FK CONSTRAINT",
    "FOREIGN TABLE",
    "ROW SECURITY",
    "SEQUENCE SET",
    "INDEX ATTACH",
    "TABLE ATTACH",
    "LARGE OBJECT",
    "USER MAPPING",
    "DEFAULT ACL",
    "PUBLICATION",
    "SUBSCRIPTION",
    "TABLE DATA",
    "BLOB DATA",
    "CONSTRAINT",
    "CONVERSION",
    "STATISTICS",
    "SEARCHPATH",
    "STDSTRINGS",
    "AGGREGATE",
    "COLLATION",
    "EXTENSION",
    "PROCEDURE",
    "TRANSFORM",
    "ENCODING",
    "FUNCTION",
    "OPERATOR",
    "SEQUENCE",
    "DATABASE",
    "COMMENT",
    "DEFAULT",
    "TRIGGER",
    "POLICY",
    "SCHEMA",
    "SERVER",
    "DOMAIN",
    "INDEX",
    "TABLE",
    "RULE",
    "BLOB",
    "CAST",
    "TYPE",
    "VIEW",
    "ACL",
];

/// One line of the list: `ID; TABLEOID OID DESC SCHEMA TAG OWNER`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The archive's dump id (what `depends on` lines name).
    pub id: u32,
    /// The source's catalog id of the object: `(pg_class oid of its catalog, its oid)`; zeros
    /// for entries that are not catalog objects (comments, sequence values, ...).
    pub catalog: (u32, u32),
    pub desc: String,
    /// `-` for objects outside any schema.
    pub schema: String,
    pub tag: String,
}

/// Parses a list line; `None` for comments, blank lines and anything not understood.
pub fn parse_line(line: &str) -> Option<Entry> {
    if line.starts_with(';') || line.trim().is_empty() {
        return None;
    }
    let (id, rest) = line.split_once("; ")?;
    let mut it = rest.splitn(3, ' ');
    let (tableoid, oid, rest) = (it.next()?, it.next()?, it.next()?);
    let desc = DESCS
        .iter()
        .find(|d| rest.strip_prefix(**d).is_some_and(|r| r.starts_with(' ')))?;
    let rest = &rest[desc.len() + 1..];
    let (schema, rest) = rest.split_once(' ')?;
    // The owner is the last word (empty for some entries, leaving a trailing space).
    let tag = match rest.strip_suffix(' ') {
        Some(t) => t,
        None => rest.rsplit_once(' ').map(|(t, _)| t).unwrap_or(rest),
    };
    Some(Entry {
        id: id.trim().parse().ok()?,
        catalog: (tableoid.parse().ok()?, oid.parse().ok()?),
        desc: desc.to_string(),
        schema: schema.to_string(),
        tag: tag.to_string(),
    })
}

/// What the restore leaves out, beyond the entries of schemas that are not imported.
#[derive(Debug, Default)]
pub struct Rules {
    pub imported: BTreeSet<String>,
    /// Whether auth.users' rows are restored (its definition always is, when present).
    pub auth_users_data: bool,
    /// Index names of auth.users (`None`: unknown, keep only its constraints).
    pub auth_users_indexes: Option<BTreeSet<String>>,
    /// `(schema, "table constraint")` foreign keys to leave out.
    pub drop_fks: BTreeSet<(String, String)>,
    /// `(schema, "table policy")` policies to leave out.
    pub drop_policies: BTreeSet<(String, String)>,
    /// Objects that depend on an extension the target lacks, left out with everything that
    /// depends on them (`--leave-out-missing-extensions`): catalog ids of the source's objects,
    /// and extensions whose archive entry's dependents go (a dump file's only record of them).
    pub drop_dependents: Dependents,
}

/// What depends on an extension the target lacks, as the restore's filter sees it.
#[derive(Debug, Default, Clone)]
pub struct Dependents {
    /// `(catalog, oid)` of the source's objects found in its catalog.
    pub objects: BTreeSet<(u32, u32)>,
    /// Extension names: their EXTENSION entry's dependents go.
    pub extensions: BTreeSet<String>,
}

/// The `;\tdepends on: 12 34` lines: entry id -> the ids it depends on.
pub fn dependencies(list: &str) -> BTreeMap<u32, Vec<u32>> {
    let mut out = BTreeMap::new();
    let mut current = None;
    for line in list.lines() {
        if let Some(e) = parse_line(line) {
            current = Some(e.id);
        } else if let (Some(id), Some(ids)) = (
            current,
            line.trim_start_matches(';')
                .trim()
                .strip_prefix("depends on:"),
        ) {
            out.insert(
                id,
                ids.split_whitespace()
                    .filter_map(|d| d.parse().ok())
                    .collect(),
            );
        }
    }
    out
}

/// The entries of `list` that `d` names, with everything that depends on them (directly or
/// through other entries), in list order.
pub fn dependents(list: &str, d: &Dependents) -> Vec<Entry> {
    let entries = entries(list);
    if d.objects.is_empty() && d.extensions.is_empty() {
        return Vec::new();
    }
    let deps = dependencies(list);
    let mut gone: BTreeSet<u32> = entries
        .iter()
        .filter(|e| {
            (e.catalog.1 != 0 && d.objects.contains(&e.catalog))
                || (e.desc == "EXTENSION" && d.extensions.contains(&e.tag))
        })
        .map(|e| e.id)
        .collect();
    // A fixpoint: the list is short enough (thousands of entries) for repeated passes.
    loop {
        let before = gone.len();
        for (id, on) in &deps {
            if on.iter().any(|o| gone.contains(o)) {
                gone.insert(*id);
            }
        }
        if gone.len() == before {
            break;
        }
    }
    entries
        .into_iter()
        .filter(|e| gone.contains(&e.id) && e.desc != "EXTENSION")
        .collect()
}

/// Why an entry is left out, or `None` to restore it.
pub fn verdict(e: &Entry, r: &Rules) -> Option<&'static str> {
    let first_word = e.tag.split(' ').next().unwrap_or("");
    match e.desc.as_str() {
        "EVENT TRIGGER" => return Some("event trigger"),
        "PUBLICATION" if super::managed::is_realtime_publication(&e.tag) => {
            return Some("Supabase Realtime publication");
        }
        "PUBLICATION TABLE" | "PUBLICATION TABLES IN SCHEMA"
            if super::managed::is_realtime_publication(first_word) =>
        {
            return Some("Supabase Realtime publication");
        }
        "EXTENSION" => return Some("extension (created by the compatibility layer)"),
        "COMMENT" if e.tag.starts_with("EXTENSION ") => return Some("comment on an extension"),
        "SCHEMA" => return Some("schema (created by the compatibility layer)"),
        "COMMENT" if e.tag.starts_with("SCHEMA ") => {
            let s = e.tag["SCHEMA ".len()..].trim_matches('"');
            if s == "public" || !r.imported.contains(s) {
                return Some("comment on a schema not owned by the import");
            }
            return None;
        }
        "ACL" | "DEFAULT ACL" | "SECURITY LABEL" => {
            return Some("privileges and labels are stripped");
        }
        _ => {}
    }
    if e.schema == "-" {
        return None;
    }
    if e.schema == "auth" {
        let users_part = |prefix: &str| e.tag.starts_with(prefix);
        let keep = match e.desc.as_str() {
            "TABLE" => e.tag == "users",
            "TABLE DATA" => e.tag == "users" && r.auth_users_data,
            "CONSTRAINT" | "CHECK CONSTRAINT" | "DEFAULT" => users_part("users "),
            "INDEX" => r
                .auth_users_indexes
                .as_ref()
                .is_some_and(|ix| ix.contains(&e.tag)),
            "COMMENT" => e.tag == "TABLE users" || users_part("COLUMN users."),
            _ => false,
        };
        return (!keep).then_some("Supabase-managed schema auth (only auth.users is carried)");
    }
    if !r.imported.contains(&e.schema) {
        return Some("schema not imported");
    }
    match e.desc.as_str() {
        "FK CONSTRAINT" if r.drop_fks.contains(&(e.schema.clone(), e.tag.clone())) => {
            Some("foreign key to a table that is not imported")
        }
        "POLICY" if r.drop_policies.contains(&(e.schema.clone(), e.tag.clone())) => {
            Some("policy for a role the target lacks")
        }
        _ => None,
    }
}

/// The list to restore: every line kept as is, left-out entries commented with their reason.
pub fn filter(list: &str, rules: &Rules) -> (String, usize) {
    let mut out = String::with_capacity(list.len());
    let mut kept = 0;
    let gone: BTreeSet<u32> = dependents(list, &rules.drop_dependents)
        .iter()
        .map(|e| e.id)
        .collect();
    for line in list.lines() {
        match parse_line(line).map(|e| {
            if gone.contains(&e.id) {
                Some("depends on an extension the target lacks")
            } else {
                verdict(&e, rules)
            }
        }) {
            Some(Some(why)) => {
                out.push_str(&format!("; left out ({why}): {line}\n"));
            }
            Some(None) => {
                kept += 1;
                out.push_str(line);
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    (out, kept)
}

/// `(schema, "table constraint", referenced "schema.table")` of every foreign key in the SQL that
/// `pg_restore --file=-` prints for a list of FK CONSTRAINT entries (a dump file's only record of
/// what its foreign keys reference).
pub fn foreign_key_targets(sql: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in sql.lines() {
        if let Some(rest) = line.strip_prefix("-- Name: ") {
            current = rest
                .split_once("; Type: FK CONSTRAINT; Schema: ")
                .and_then(|(tag, r)| {
                    r.split_once(';')
                        .map(|(schema, _)| (schema.to_string(), tag.to_string()))
                });
        } else if let (Some((schema, tag)), Some((_, r))) =
            (&current, line.split_once(" REFERENCES "))
        {
            let target = r.split('(').next().unwrap_or("").trim();
            let unquoted: String = target
                .split('.')
                .map(|p| p.trim_matches('"'))
                .collect::<Vec<_>>()
                .join(".");
            out.push((schema.clone(), tag.clone(), unquoted));
            current = None;
        }
    }
    out
}

/// The entries of a list (for an inventory of a dump file).
pub fn entries(list: &str) -> Vec<Entry> {
    list.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
;
; Archive created at 2026-11-22 22:00:00 UTC
;
5; 2615 16388 SCHEMA - app postgres
2; 3079 16389 EXTENSION - pgcrypto 
4321; 0 0 COMMENT - EXTENSION pgcrypto 
873; 1247 16400 TYPE app todo_status postgres
230; 1255 16410 FUNCTION public handle_new_user() postgres
231; 1255 16411 FUNCTION auth uid() supabase_auth_admin
240; 1259 16412 TABLE auth users supabase_auth_admin
241; 1259 16413 TABLE auth sessions supabase_auth_admin
3456; 0 16420 TABLE DATA app todos postgres
3457; 0 16421 TABLE DATA auth users supabase_auth_admin
3460; 0 0 SEQUENCE SET app todos_id_seq postgres
3300; 2606 16430 CONSTRAINT app todos todos_pkey postgres
3301; 2606 16431 CONSTRAINT auth users users_pkey supabase_auth_admin
3302; 1259 16432 INDEX auth users_instance_id_idx supabase_auth_admin
3303; 1259 16433 INDEX auth sessions_user_idx supabase_auth_admin
3304; 2620 16450 TRIGGER auth users on_auth_user_created supabase_auth_admin
3305; 2606 16460 FK CONSTRAINT app todos todos_user_id_fkey postgres
3306; 2606 16461 FK CONSTRAINT app avatars avatars_bucket_fkey postgres
3307; 3256 16470 POLICY app todos own todos postgres
3308; 0 16480 ROW SECURITY app todos postgres
3309; 6104 16490 PUBLICATION - supabase_realtime postgres
3310; 6106 16500 PUBLICATION TABLE app supabase_realtime todos postgres
3311; 6104 16491 PUBLICATION - mine postgres
3312; 3466 16510 EVENT TRIGGER - ddl_watch postgres
3313; 0 0 COMMENT app TABLE todos postgres
3314; 0 0 COMMENT - SCHEMA public pg_database_owner
3315; 0 0 ACL app TABLE todos postgres
";

    fn rules() -> Rules {
        Rules {
            imported: ["app".to_string()].into(),
            auth_users_data: true,
            auth_users_indexes: Some(["users_instance_id_idx".to_string()].into()),
            drop_fks: [("app".into(), "avatars avatars_bucket_fkey".into())].into(),
            drop_policies: BTreeSet::new(),
            drop_dependents: Dependents::default(),
        }
    }

    fn kept(list: &str) -> Vec<String> {
        list.lines()
            .filter(|l| !l.starts_with(';'))
            .map(|l| {
                l.split_once("; ")
                    .unwrap()
                    .1
                    .splitn(3, ' ')
                    .nth(2)
                    .unwrap()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn lines_parse_with_multi_word_kinds_and_empty_owners() {
        let e = parse_line("3305; 2606 16460 FK CONSTRAINT app todos todos_user_id_fkey postgres")
            .unwrap();
        assert_eq!(
            (e.desc.as_str(), e.schema.as_str(), e.tag.as_str()),
            ("FK CONSTRAINT", "app", "todos todos_user_id_fkey")
        );
        let e = parse_line("4321; 0 0 COMMENT - EXTENSION pgcrypto ").unwrap();
        assert_eq!(
            (e.desc.as_str(), e.tag.as_str()),
            ("COMMENT", "EXTENSION pgcrypto")
        );
        let e = parse_line("3456; 0 16420 TABLE DATA app todos postgres").unwrap();
        assert_eq!(e.desc, "TABLE DATA");
        assert!(parse_line("; comment").is_none());
    }

    #[test]
    fn the_filter_keeps_app_objects_and_auth_users_only() {
        let (out, n) = filter(LIST, &rules());
        let k = kept(&out);
        assert_eq!(
            k,
            vec![
                "TYPE app todo_status postgres",
                "FUNCTION public handle_new_user() postgres",
                "TABLE auth users supabase_auth_admin",
                "TABLE DATA app todos postgres",
                "TABLE DATA auth users supabase_auth_admin",
                "SEQUENCE SET app todos_id_seq postgres",
                "CONSTRAINT app todos todos_pkey postgres",
                "CONSTRAINT auth users users_pkey supabase_auth_admin",
                "INDEX auth users_instance_id_idx supabase_auth_admin",
                "FK CONSTRAINT app todos todos_user_id_fkey postgres",
                "POLICY app todos own todos postgres",
                "ROW SECURITY app todos postgres",
                "PUBLICATION - mine postgres",
                "COMMENT app TABLE todos postgres",
            ]
            .into_iter()
            .filter(|l| !l.starts_with("FUNCTION public"))
            .collect::<Vec<_>>()
        );
        assert_eq!(n, k.len());
        assert!(out.contains("; left out (event trigger): 3312;"), "{out}");
        assert!(out.contains("; left out (Supabase Realtime publication): 3310;"));
        assert!(out.contains("; left out (foreign key to a table that is not imported): 3306;"));
        assert!(out.contains("3304; 2620 16450 TRIGGER auth users on_auth_user_created"));
        assert!(
            kept(&out)
                .iter()
                .all(|l| !l.contains("on_auth_user_created"))
        );
    }

    #[test]
    fn foreign_key_targets_are_read_from_the_restore_sql() {
        let sql = "--\n-- Name: avatars avatars_bucket_id_fkey; Type: FK CONSTRAINT; Schema: app; Owner: postgres\n--\n\n\
                   ALTER TABLE ONLY app.avatars\n    ADD CONSTRAINT avatars_bucket_id_fkey FOREIGN KEY (bucket_id) REFERENCES storage.buckets(id);\n\n\
                   -- Name: todos t_fk; Type: FK CONSTRAINT; Schema: app; Owner: postgres\n\
                   ALTER TABLE ONLY app.todos\n    ADD CONSTRAINT t_fk FOREIGN KEY (user_id) REFERENCES auth.users(id);\n";
        assert_eq!(
            foreign_key_targets(sql),
            vec![
                (
                    "app".into(),
                    "avatars avatars_bucket_id_fkey".into(),
                    "storage.buckets".into()
                ),
                ("app".into(), "todos t_fk".into(), "auth.users".into()),
            ]
        );
    }

    #[test]
    fn skipping_auth_users_leaves_out_its_rows_only() {
        let mut r = rules();
        r.auth_users_data = false;
        let k = kept(&filter(LIST, &r).0);
        assert!(k.contains(&"TABLE auth users supabase_auth_admin".to_string()));
        assert!(!k.iter().any(|l| l.starts_with("TABLE DATA auth")));
    }
}
