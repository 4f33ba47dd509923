//! The roles migrate bootstraps: a rotated password works and the old one does not (in
//! PostgreSQL and in PgBouncer's user list), and the privilege matrix of every role, asserted
//! cell by cell and written to docs/privileges.md.

use std::collections::BTreeMap;

use super::{env_value, migrate, stack};
use crate::support::{Db, Postgres, Stackctl};

#[test]
fn rotation_new_password_works_old_does_not() {
    let pg = Postgres::start();
    let s = Stackctl::new();
    s.cmd(["init", "--pooler", "pgbouncer"]).run().success();
    migrate(&s, &pg).success();
    let old = env_value(&s, "APP_DB_PASSWORD");
    assert!(
        Db::connect(&pg.url_as("app", &old)).is_ok(),
        "app cannot log in after the first migrate"
    );

    s.cmd(["init", "--rotate", "APP_DB_PASSWORD"])
        .run()
        .success();
    let new = env_value(&s, "APP_DB_PASSWORD");
    assert_ne!(old, new);
    migrate(&s, &pg)
        .success()
        .stdout_contains("set password of app");

    assert!(
        Db::connect(&pg.url_as("app", &new)).is_ok(),
        "app cannot log in with the rotated password"
    );
    let err = Db::connect(&pg.url_as("app", &old))
        .err()
        .expect("the old password still works");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err:?}"
    );
    // Stored as a SCRAM verifier, never as the password itself.
    let stored = pg
        .db()
        .strings("select rolpassword from pg_authid where rolname = 'app'");
    assert!(
        stored[0].starts_with("SCRAM-SHA-256$4096:") && !stored[0].contains(&new),
        "{stored:?}"
    );
    // PgBouncer passes SCRAM through only if its user list holds the very verifier PostgreSQL
    // stores: compare them for every pooled login, after the rotation.
    let userlist = s.read("pgbouncer/userlist.txt");
    for role in ["db_authenticator", "postgate", "runner", "app"] {
        let in_pooler = userlist
            .lines()
            .find_map(|l| l.strip_prefix(&format!("\"{role}\" \"")))
            .map(|v| v.trim_end_matches('"').to_string())
            .unwrap_or_else(|| panic!("{role} not in userlist.txt:\n{userlist}"));
        let in_db = pg.db().strings(&format!(
            "select rolpassword from pg_authid where rolname = '{role}'"
        ));
        assert_eq!(in_db, vec![in_pooler], "verifier of {role}");
    }
}

const ROLES: &[&str] = &[
    "db_migrator",
    "app_user",
    "app",
    "web_anon",
    "read_only",
    "db_authenticator",
    "postgate",
    "runner",
    "pooler_auth",
    "monitor",
    "anon",
    "authenticated",
    "service_role",
];

/// (column title, SQL run as the role; allowed when it succeeds).
const OPS: &[(&str, &str)] = &[
    ("SELECT", "SELECT * FROM shop.items"),
    ("INSERT", "INSERT INTO shop.items (name) VALUES ('x')"),
    ("UPDATE", "UPDATE shop.items SET name = 'y'"),
    ("DELETE", "DELETE FROM shop.items"),
    ("CREATE TABLE", "CREATE TABLE shop.new_table (x int)"),
    ("DROP TABLE", "DROP TABLE shop.items"),
    ("SELECT no-rights schema", "SELECT * FROM private.secrets"),
    ("CREATE SCHEMA", "CREATE SCHEMA new_schema"),
    ("CREATE in public", "CREATE TABLE public.new_table (x int)"),
    ("CREATE ROLE", "CREATE ROLE new_role"),
    ("SELECT postgate.tokens", "SELECT * FROM postgate.tokens"),
    ("runner.enqueue()", "SELECT runner.enqueue('q', '{}')"),
];

/// What each role may do: the ops it is allowed (by column title), the roles it may SET ROLE to,
/// and whether it may log in.
fn expected() -> BTreeMap<&'static str, (Vec<&'static str>, Vec<&'static str>, bool)> {
    let dml = vec!["SELECT", "INSERT", "UPDATE", "DELETE"];
    let mut m = BTreeMap::new();
    m.insert(
        "db_migrator",
        (
            vec![
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "CREATE TABLE",
                "DROP TABLE",
                "CREATE SCHEMA",
                "CREATE in public",
            ],
            // postgate's admin CLI (`stackctl tenant|token`) runs as db_migrator with SET ROLE
            // postgate_admin; the grant has INHERIT FALSE, so migrations see none of its tables.
            vec!["postgate_admin"],
            true,
        ),
    );
    m.insert(
        "app_user",
        (
            [dml.clone(), vec!["runner.enqueue()"]].concat(),
            vec![],
            false,
        ),
    );
    m.insert(
        "app",
        (
            [dml.clone(), vec!["runner.enqueue()"]].concat(),
            vec!["app_user"],
            true,
        ),
    );
    m.insert("web_anon", (vec!["SELECT"], vec![], false));
    m.insert("read_only", (vec!["SELECT"], vec![], false));
    m.insert(
        "db_authenticator",
        (vec![], vec!["app_user", "web_anon"], true),
    );
    m.insert("postgate", (vec!["SELECT postgate.tokens"], vec![], true));
    m.insert(
        "runner",
        (
            vec!["SELECT postgate.tokens", "runner.enqueue()"],
            // Worker tenants and tokens for env.DB (`runner worker deploy --db-tenant`).
            vec!["postgate_admin"],
            true,
        ),
    );
    // PgBouncer's auth_user: logs in, may call pooler.auth_lookup and nothing in the matrix.
    m.insert("pooler_auth", (vec![], vec![], true));
    // The exporters' login: statistics through pg_monitor (INHERIT, no SET), no table data.
    m.insert("monitor", (vec![], vec![], true));
    for r in ["anon", "authenticated", "service_role"] {
        m.insert(r, (vec![], vec![], false));
    }
    m
}

/// Whether `sql` succeeds as `role` (the session user becomes the role, so SET ROLE is checked
/// against its own memberships). Nothing is kept: the transaction rolls back.
fn allowed(db: &Db, role: &str, sql: &str) -> bool {
    db.batch("BEGIN").unwrap();
    db.batch(&format!("SET LOCAL SESSION AUTHORIZATION {role}"))
        .unwrap();
    let ok = db.batch(sql).is_ok();
    db.batch("ROLLBACK").unwrap();
    ok
}

#[test]
fn privilege_matrix() {
    let pg = Postgres::start();
    let s = stack();
    s.write(
        "db/migrations/V1__shop.sql",
        "create schema shop;\ncreate table shop.items (id serial primary key, name text);\ninsert into shop.items (name) values ('a');\n",
    );
    migrate(&s, &pg).success();
    let db = pg.db();
    // A schema nobody was given rights to.
    db.batch("CREATE SCHEMA private; CREATE TABLE private.secrets (x int)")
        .unwrap();

    let expected = expected();
    let mut observed: BTreeMap<&str, (Vec<&str>, Vec<&str>, bool)> = BTreeMap::new();
    for role in ROLES {
        let ops: Vec<&str> = OPS
            .iter()
            .filter(|(_, sql)| allowed(&db, role, sql))
            .map(|(t, _)| *t)
            .collect();
        let mut set_roles: Vec<&str> = ROLES
            .iter()
            .filter(|r| *r != role)
            .filter(|other| allowed(&db, role, &format!("SET ROLE {other}")))
            .copied()
            .collect();
        for other in [
            "postgres",
            "postgate_admin",
            "pg_read_all_data",
            "pg_monitor",
            "pg_write_all_data",
            "pg_execute_server_program",
        ] {
            if allowed(&db, role, &format!("SET ROLE {other}")) {
                set_roles.push(other);
            }
        }
        set_roles.sort();
        let password = match *role {
            "db_migrator" => env_value(&s, "MIGRATOR_PASSWORD"),
            "db_authenticator" => env_value(&s, "AUTHENTICATOR_PASSWORD"),
            "postgate" => env_value(&s, "POSTGATE_DB_PASSWORD"),
            "runner" => env_value(&s, "RUNNER_DB_PASSWORD"),
            "app" => env_value(&s, "APP_DB_PASSWORD"),
            "pooler_auth" => env_value(&s, "POOLER_AUTH_PASSWORD"),
            "monitor" => env_value(&s, "MONITOR_DB_PASSWORD"),
            // NOLOGIN roles have no password; try one anyway.
            _ => "any-password".to_string(),
        };
        let login = Db::connect(&pg.url_as(role, &password)).is_ok();
        observed.insert(role, (ops, set_roles, login));
    }

    // Print the matrix for the README before asserting, so a failure shows the whole picture.
    let mut md = String::from(
        "# Privileges after `stackctl migrate`\n\n\
         Generated by `tests/integration/migrate/roles.rs` (`privilege_matrix`) against PostgreSQL 17; every cell is\n\
         asserted. `shop` is an application schema created by a migration (so owned by `db_migrator`);\n\
         `private` is a schema no role was given rights to. ✓ allowed, ✗ denied.\n\n| role |",
    );
    for (t, _) in OPS {
        md.push_str(&format!(" {t} |"));
    }
    md.push_str(" may SET ROLE to | login |\n|---|");
    for _ in OPS {
        md.push_str(":-:|");
    }
    md.push_str("---|:-:|\n");
    let mark = |b: bool| if b { "✓" } else { "✗" };
    for role in ROLES {
        let (ops, set_roles, login) = &observed[role];
        md.push_str(&format!("| `{role}` |"));
        for (t, _) in OPS {
            md.push_str(&format!(" {} |", mark(ops.contains(t))));
        }
        let sr = if set_roles.is_empty() {
            "—".to_string()
        } else {
            set_roles
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        md.push_str(&format!(" {sr} | {} |\n", mark(*login)));
    }
    md.push_str(
        "\nSET ROLE was tried from each role to every other role above and to `postgres`, `postgate_admin`,\n\
         `pg_read_all_data`, `pg_write_all_data` and `pg_execute_server_program`. No role but the superuser can create roles.\n\n\
         Supabase's API roles carry Supabase's attributes: `anon`, `authenticated` and `service_role` are\n\
         NOLOGIN NOINHERIT, and `service_role` has BYPASSRLS (it reads past row-level security, as on Supabase).\n",
    );
    let attrs = db.strings(
        "SELECT rolname || ' ' || rolcanlogin || ' ' || rolinherit || ' ' || rolbypassrls FROM pg_roles \
          WHERE rolname IN ('anon', 'authenticated', 'service_role') ORDER BY 1",
    );
    assert_eq!(
        attrs,
        [
            "anon false false false",
            "authenticated false false false",
            "service_role false false true"
        ]
    );
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/privileges.md");
    std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
    std::fs::write(&docs, &md).unwrap();

    // pg_stat_statements (preloaded by our image, made by the bootstrap): only statistics
    // readers (pg_read_all_stats, so monitor) read it, through the view or the function; the
    // exporter names it without a schema, so monitor's own search_path finds it.
    for role in ROLES {
        let want = *role == "monitor";
        for sql in [
            "SELECT count(*) FROM extensions.pg_stat_statements",
            "SELECT count(*) FROM extensions.pg_stat_statements(true)",
        ] {
            assert_eq!(allowed(&db, role, sql), want, "{role}: {sql}");
        }
    }
    let monitor = Db::connect(&pg.url_as("monitor", &env_value(&s, "MONITOR_DB_PASSWORD")))
        .expect("monitor logs in");
    let seen = monitor.strings("SELECT count(*)::text FROM pg_stat_statements");
    assert!(
        seen[0].parse::<u64>().unwrap() > 0,
        "monitor sees no statement: {seen:?}"
    );

    for role in ROLES {
        let (e_ops, e_set, e_login) = &expected[role];
        let (o_ops, o_set, o_login) = &observed[role];
        assert_eq!(
            (o_ops, o_set, o_login),
            (e_ops, e_set, e_login),
            "role {role}: observed vs expected\n{md}"
        );
    }
}
