//! Who may do what, as the API sees it: the Supabase roles' attributes and memberships, the API
//! roles' settings (`ALTER ROLE … SET`), and what the API roles and PUBLIC may do on every
//! imported schema, table, sequence and function. Read the same way from the source (inside the
//! dump's snapshot) and from the target, so that verification compares like with like; the
//! source's reading also says what to carry that a `--no-privileges` restore and the role
//! bootstrap do not give (see `access.sql` and [`carry`]).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use super::managed;

/// The attributes compared, in `pg_roles` order, as `ALTER ROLE` spells them.
const ATTRIBUTES: &[&str] = &[
    "SUPERUSER",
    "INHERIT",
    "CREATEROLE",
    "CREATEDB",
    "LOGIN",
    "REPLICATION",
    "BYPASSRLS",
];

/// Attributes the import carries (the role bootstrap gives the API roles Supabase's; the
/// compatibility layer gives them to `authenticator`). The others are the stack's to decide:
/// no API role may log in, create roles or databases, or replicate.
const CARRIED: &[&str] = &["INHERIT", "BYPASSRLS"];

/// What one database says about access.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Access {
    /// Supabase role -> its attributes that are on (e.g. `["INHERIT", "LOGIN"]`).
    pub roles: BTreeMap<String, Vec<String>>,
    /// `(member, role)`: `member` is a member of `role`; both Supabase roles.
    pub memberships: BTreeSet<(String, String)>,
    /// API role -> `name=value` settings (for every database, or this one), sorted.
    pub settings: BTreeMap<String, Vec<String>>,
    /// `kind name` (e.g. `function app.f(uuid)`) -> grantee (an API role or `PUBLIC`) ->
    /// its privileges, comma-separated in a fixed order.
    pub privileges: BTreeMap<String, BTreeMap<String, String>>,
}

/// The roles whose settings and privileges are compared: the API roles, the role PostgREST
/// logs in as, and PUBLIC (privileges only).
pub const API: &[&str] = &["anon", "authenticated", "service_role", "authenticator"];

/// Reads access for the imported `schemas`.
pub async fn read(client: &impl GenericClient, schemas: &[String]) -> Result<Access> {
    let roles: Vec<String> = managed::ROLES.iter().map(|r| r.to_string()).collect();
    let mut access = Access::default();
    for r in client
        .query(
            "SELECT rolname::text, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, \
                    rolreplication, rolbypassrls \
               FROM pg_roles WHERE rolname = ANY($1)",
            &[&roles],
        )
        .await
        .context("reading the Supabase roles' attributes")?
    {
        let on = ATTRIBUTES
            .iter()
            .enumerate()
            .filter(|(i, _)| r.get::<_, bool>(i + 1))
            .map(|(_, a)| a.to_string())
            .collect();
        access.roles.insert(r.get(0), on);
    }
    for r in client
        .query(
            "SELECT m.rolname::text, g.rolname::text FROM pg_auth_members a \
               JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid \
              WHERE m.rolname = ANY($1) AND g.rolname = ANY($1)",
            &[&roles],
        )
        .await
        .context("reading the Supabase roles' memberships")?
    {
        access.memberships.insert((r.get(0), r.get(1)));
    }
    let api: Vec<String> = API.iter().map(|r| r.to_string()).collect();
    for r in client
        .query(
            "SELECT r.rolname::text, s.setdatabase = 0, unnest(s.setconfig) \
               FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
              WHERE r.rolname = ANY($1) \
                AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) \
              ORDER BY 1, 2 DESC, 3",
            &[&api],
        )
        .await
        .context("reading the API roles' settings")?
    {
        let every_db: bool = r.get(1);
        let setting: String = r.get(2);
        access.settings.entry(r.get(0)).or_default().push(if every_db {
            setting
        } else {
            format!("{setting} (this database)")
        });
    }
    // Types in function signatures schema-qualified, whatever the session's search_path.
    let search_path: String = client
        .query_one(
            "SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog', false)",
            &[],
        )
        .await
        .context("setting the search_path")?
        .get(0);
    let privileges = client
        .query(include_str!("access.sql"), &[&schemas, &api])
        .await
        .context("reading the privileges of the API roles and PUBLIC")?;
    client
        .query_one(
            "SELECT set_config('search_path', $1, false)",
            &[&search_path],
        )
        .await
        .context("putting the search_path back")?;
    for r in privileges {
        access
            .privileges
            .entry(r.get(0))
            .or_default()
            .insert(r.get(1), r.get(2));
    }
    Ok(access)
}

/// One compared thing: what the source and the target say, and whether that is a difference.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Compared {
    /// `role anon`, `membership authenticator in anon`, `settings of anon`, `table app.todos to anon`.
    pub what: String,
    pub source: String,
    pub target: String,
    pub ok: bool,
}

/// Source against target: every Supabase role both have, every membership among them, the API
/// roles' settings, and the privileges of every object both have (an object missing on the
/// target is the object counts' difference, not repeated here). Attributes the stack does not
/// carry are compared without them: [`not_carried_attributes`] lists them.
pub fn compare(source: &Access, target: &Access) -> Vec<Compared> {
    let mut out = Vec::new();
    let mut push = |what: String, s: String, t: String| {
        let ok = s == t;
        out.push(Compared {
            what,
            source: s,
            target: t,
            ok,
        });
    };
    for (role, s) in &source.roles {
        let Some(t) = target.roles.get(role) else {
            continue;
        };
        let carried = |v: &Vec<String>| {
            CARRIED
                .iter()
                .map(|a| {
                    if v.iter().any(|x| x == a) {
                        a.to_string()
                    } else {
                        format!("NO{a}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        push(format!("role {role}"), carried(s), carried(t));
    }
    let both = |r: &str| source.roles.contains_key(r) && target.roles.contains_key(r);
    let pairs: BTreeSet<&(String, String)> = source
        .memberships
        .iter()
        .chain(&target.memberships)
        .filter(|(m, g)| both(m) && both(g))
        .collect();
    for pair in pairs {
        let yes = |a: &Access| {
            if a.memberships.contains(pair) {
                "member"
            } else {
                "not a member"
            }
        };
        push(
            format!("membership of {} in {}", pair.0, pair.1),
            yes(source).into(),
            yes(target).into(),
        );
    }
    for role in API {
        if !target.roles.contains_key(*role) || !source.roles.contains_key(*role) {
            continue;
        }
        let of = |a: &Access| {
            a.settings
                .get(*role)
                .map(|v| v.join("; "))
                .unwrap_or_default()
        };
        push(format!("settings of {role}"), of(source), of(target));
    }
    for (object, grants) in &source.privileges {
        let Some(tgrants) = target.privileges.get(object) else {
            continue;
        };
        // Every API role both sides have, and PUBLIC: "nothing" is compared too.
        let grantees = API
            .iter()
            .filter(|g| source.roles.contains_key(**g) && target.roles.contains_key(**g))
            .chain(&["PUBLIC"]);
        for g in grantees {
            let of = |m: &BTreeMap<String, String>| m.get(*g).cloned().unwrap_or_default();
            push(format!("{object} to {g}"), of(grants), of(tgrants));
        }
    }
    out
}

/// The source's role attributes the import does not carry, as `(role, attribute, reason)`:
/// only for roles the target has.
pub fn not_carried_attributes(source: &Access, target: &Access) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (role, s) in &source.roles {
        let Some(t) = target.roles.get(role) else {
            continue;
        };
        for a in ATTRIBUTES.iter().filter(|a| !CARRIED.contains(a)) {
            let (on_s, on_t) = (s.iter().any(|x| x == a), t.iter().any(|x| x == a));
            if on_s != on_t {
                let reason = if *a == "LOGIN" {
                    "no password is imported: the stack's own logins serve the API (db_authenticator, postgate)"
                } else {
                    "the stack gives no API role the right to create roles or databases, replicate, or act as superuser"
                };
                out.push((
                    role.clone(),
                    if on_s {
                        a.to_string()
                    } else {
                        format!("NO{a}")
                    },
                    reason.to_string(),
                ));
            }
        }
    }
    out
}

/// What to run on the target, as the superuser, after the restore and the role bootstrap: the
/// Supabase roles the source has among [`API`] that the target lacks (created NOLOGIN, with the
/// source's INHERIT/BYPASSRLS), the memberships among Supabase roles, and the API roles'
/// settings. Privileges come from `grants.sql` ([`super::inventory`]).
pub fn carry(source: &Access, target_roles: &BTreeSet<String>, database: &str) -> Vec<String> {
    let q = quote_ident;
    let mut out = Vec::new();
    let mut present = target_roles.clone();
    for role in API {
        let Some(attrs) = source.roles.get(*role) else {
            continue;
        };
        let inherit = if attrs.iter().any(|a| a == "INHERIT") {
            "INHERIT"
        } else {
            "NOINHERIT"
        };
        let bypass = if attrs.iter().any(|a| a == "BYPASSRLS") {
            "BYPASSRLS"
        } else {
            "NOBYPASSRLS"
        };
        if !present.contains(*role) {
            out.push(format!(
                "CREATE ROLE {} NOLOGIN {inherit} {bypass}",
                q(role)
            ));
            present.insert(role.to_string());
        }
    }
    for (member, role) in &source.memberships {
        if present.contains(member) && present.contains(role) {
            out.push(format!("GRANT {} TO {}", q(role), q(member)));
        }
    }
    for (role, settings) in &source.settings {
        if !present.contains(role) {
            continue;
        }
        for s in settings {
            let (setting, here) = match s.strip_suffix(" (this database)") {
                Some(x) => (x, format!(" IN DATABASE {}", q(database))),
                None => (s.as_str(), String::new()),
            };
            let Some((name, value)) = setting.split_once('=') else {
                continue;
            };
            // setconfig holds list settings (search_path) already in list syntax.
            let value = if name == "search_path" {
                value.to_string()
            } else {
                quote_literal(value)
            };
            out.push(format!(
                "ALTER ROLE {}{here} SET {} TO {value}",
                q(role),
                q(name)
            ));
        }
    }
    out
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supabase() -> Access {
        let mut a = Access::default();
        for (r, attrs) in [
            ("anon", vec![]),
            ("authenticated", vec![]),
            ("service_role", vec!["BYPASSRLS"]),
            ("authenticator", vec!["LOGIN"]),
        ] {
            a.roles
                .insert(r.into(), attrs.into_iter().map(String::from).collect());
        }
        for g in ["anon", "authenticated", "service_role"] {
            a.memberships.insert(("authenticator".into(), g.into()));
        }
        a.settings
            .insert("anon".into(), vec!["statement_timeout=3s".into()]);
        a.privileges.insert(
            "function app.f(uuid)".into(),
            BTreeMap::from([("authenticated".into(), "EXECUTE".into())]),
        );
        a
    }

    #[test]
    fn the_same_access_compares_equal_and_a_lost_bypassrls_does_not() {
        let s = supabase();
        assert!(compare(&s, &s).iter().all(|c| c.ok));
        let mut t = s.clone();
        t.roles.insert("service_role".into(), vec![]);
        let bad: Vec<_> = compare(&s, &t).into_iter().filter(|c| !c.ok).collect();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].what, "role service_role");
        assert_eq!(bad[0].source, "NOINHERIT BYPASSRLS");
        assert_eq!(bad[0].target, "NOINHERIT NOBYPASSRLS");
    }

    #[test]
    fn public_execute_that_came_back_is_a_difference_naming_the_object() {
        let s = supabase();
        let mut t = s.clone();
        t.privileges
            .get_mut("function app.f(uuid)")
            .unwrap()
            .insert("PUBLIC".into(), "EXECUTE".into());
        let bad: Vec<_> = compare(&s, &t).into_iter().filter(|c| !c.ok).collect();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].what, "function app.f(uuid) to PUBLIC");
        assert_eq!(
            (bad[0].source.as_str(), bad[0].target.as_str()),
            ("", "EXECUTE")
        );
    }

    #[test]
    fn login_is_not_carried_but_listed_and_the_rest_is_carried() {
        let s = supabase();
        let target_roles: BTreeSet<String> = ["anon", "authenticated", "service_role"]
            .map(String::from)
            .into();
        let sql = carry(&s, &target_roles, "app");
        assert_eq!(
            sql[0],
            "CREATE ROLE \"authenticator\" NOLOGIN NOINHERIT NOBYPASSRLS"
        );
        assert!(sql.contains(&"GRANT \"anon\" TO \"authenticator\"".to_string()));
        assert!(sql.contains(&"ALTER ROLE \"anon\" SET \"statement_timeout\" TO '3s'".to_string()));
        let mut t = s.clone();
        t.roles.insert("authenticator".into(), vec![]);
        assert!(compare(&s, &t).iter().all(|c| c.ok));
        assert_eq!(
            not_carried_attributes(&s, &t)
                .into_iter()
                .map(|(r, a, _)| format!("{r} {a}"))
                .collect::<Vec<_>>(),
            vec!["authenticator LOGIN"]
        );
    }

    #[test]
    fn settings_for_one_database_are_set_in_the_target_database() {
        let mut s = supabase();
        s.settings.insert(
            "authenticated".into(),
            vec!["search_path=\"$user\", public (this database)".into()],
        );
        let sql = carry(&s, &BTreeSet::from(["authenticated".to_string()]), "app");
        assert!(
            sql.contains(
                &"ALTER ROLE \"authenticated\" IN DATABASE \"app\" SET \"search_path\" TO \"$user\", public"
                    .to_string()
            ),
            "{sql:?}"
        );
    }
}
