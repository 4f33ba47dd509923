//! `stackctl migrate` against a real PostgreSQL 17 (a container of our image): idempotence,
//! concurrency, failures, edited files, the privilege matrix, password rotation.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use crate::support::{Db, Postgres, Stackctl, bin};

/// A stack directory with `.env` written by `stackctl init`.
fn stack() -> Stackctl {
    let s = Stackctl::new();
    s.cmd(["init"]).run().success();
    s
}

fn env_value(s: &Stackctl, key: &str) -> String {
    s.read(".env")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("{key} not in .env"))
}

fn migrate(s: &Stackctl, pg: &Postgres) -> crate::support::Done {
    s.cmd(["migrate", "--database-url", &pg.url()]).run()
}

fn status_json(s: &Stackctl, pg: &Postgres) -> serde_json::Value {
    let out = s
        .cmd(["migrate", "status", "--json", "--database-url", &pg.url()])
        .run()
        .success();
    serde_json::from_str(&out.stdout())
        .unwrap_or_else(|e| panic!("status --json: {e}\n{}", out.stdout()))
}

fn states(v: &serde_json::Value, set: &str) -> Vec<(i64, String)> {
    v[set]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["version"].as_i64().unwrap(),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn migrate_twice_the_second_run_applies_nothing() {
    let pg = Postgres::start();
    let s = stack();
    s.write(
        "db/migrations/V1__items.sql",
        "create table items (id serial primary key, name text not null);\n",
    );
    s.write(
        "db/migrations/V2__seed.sql",
        "insert into items (name) values ('a'), ('b');\n",
    );

    // Before the first run: everything pending, and --dry-run says what would run.
    let fresh = status_json(&s, &pg);
    assert!(
        states(&fresh, "platform")
            .iter()
            .all(|(_, st)| st == "pending"),
        "{fresh}"
    );
    assert_eq!(
        states(&fresh, "app"),
        vec![(1, "pending".into()), (2, "pending".into())]
    );
    s.cmd(["migrate", "--dry-run", "--database-url", &pg.url()])
        .run()
        .success()
        .stdout_contains("would apply platform migrations/V1__postgate.sql")
        .stdout_contains("would apply app db/migrations/V2__seed.sql");
    assert!(
        pg.db()
            .query("select 1 from stackctl.app_migrations")
            .is_err(),
        "--dry-run wrote"
    );

    let first = migrate(&s, &pg).success();
    assert!(
        first.stdout().contains(&format!(
            "applied {} platform and 2 app migrations",
            platform_count()
        )),
        "{}",
        first.stdout()
    );
    let second = migrate(&s, &pg).success();
    assert!(
        second.stdout().contains("up to date") && !second.stdout().contains("applied migrations/"),
        "{}",
        second.stdout()
    );
    assert!(
        second.stdout().contains("roles unchanged"),
        "{}",
        second.stdout()
    );

    let db = pg.db();
    assert_eq!(db.int("select count(*) from items"), 2);
    assert_eq!(db.int("select count(*) from stackctl.app_migrations"), 2);
    let st = status_json(&s, &pg);
    assert_eq!(
        states(&st, "app"),
        vec![(1, "applied".into()), (2, "applied".into())]
    );
    assert!(states(&st, "platform").iter().all(|(_, s)| s == "applied"));
    // The application's objects belong to db_migrator.
    assert_eq!(
        db.strings("select tableowner::text from pg_tables where tablename = 'items'"),
        vec!["db_migrator"]
    );

    // `migrate new` picks the next version; --dry-run lists it and changes nothing.
    s.cmd(["migrate", "new", "Add orders"])
        .run()
        .success()
        .stdout_contains("db/migrations/V3__add_orders.sql");
    s.write(
        "db/migrations/V3__add_orders.sql",
        "create table orders (id int);\n",
    );
    s.cmd(["migrate", "--dry-run", "--database-url", &pg.url()])
        .run()
        .success()
        .stdout_contains("would apply app db/migrations/V3__add_orders.sql");
    assert_eq!(db.int("select count(*) from stackctl.app_migrations"), 2);
}

#[test]
fn five_concurrent_runs_apply_each_migration_exactly_once() {
    let pg = Postgres::start();
    let s = stack();
    s.write(
        "db/migrations/V1__hits.sql",
        "create table hits (v int not null);\n",
    );
    for v in 2..=6 {
        // Slow enough that the runs really overlap.
        s.write(
            &format!("db/migrations/V{v}__hit{v}.sql"),
            &format!("select pg_sleep(0.05);\ninsert into hits values ({v});\n"),
        );
    }
    let children: Vec<_> = (0..5)
        .map(|_| {
            Command::new(bin())
                .arg("--dir")
                .arg(s.path())
                .args(["migrate", "--database-url", &pg.url()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawning stackctl")
        })
        .collect();
    let mut app_applied = 0;
    let mut platform_applied = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "a run failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        app_applied += text
            .lines()
            .filter(|l| l.starts_with("app: applied"))
            .count();
        platform_applied += text
            .lines()
            .filter(|l| l.starts_with("platform: applied"))
            .count();
    }
    assert_eq!(
        app_applied, 6,
        "each app migration is applied by exactly one run"
    );
    assert_eq!(
        platform_applied,
        platform_count(),
        "each platform migration is applied by exactly one run"
    );
    let db = pg.db();
    assert_eq!(
        db.strings("select string_agg(v::text, ',' order by v) from hits"),
        vec!["2,3,4,5,6"]
    );
    assert_eq!(db.int("select count(*) from stackctl.app_migrations"), 6);
}

#[test]
fn a_failing_migration_rolls_back_stops_the_run_and_names_file_and_line() {
    let pg = Postgres::start();
    let s = stack();
    s.write(
        "db/migrations/V1__ok.sql",
        "create table t1 (id int primary key);\n",
    );
    // A run-time error (no position from Postgres): the failing statement's line is named.
    s.write(
        "db/migrations/V2__broken.sql",
        "create table t2 (x int);\ninsert into t1 values (1);\n\n-- the second insert violates the key\ninsert into t1 values (1);\n",
    );
    s.write("db/migrations/V3__later.sql", "create table t3 (x int);\n");
    let out = migrate(&s, &pg).failure();
    let err = out.stderr();
    assert!(err.contains("db/migrations/V2__broken.sql:5"), "{err}");
    assert!(
        err.contains("duplicate key value violates unique constraint"),
        "{err}"
    );
    assert!(err.contains("rolled back"), "{err}");

    let db = pg.db();
    assert!(
        db.query("select 1 from t2").is_err(),
        "V2 was not rolled back"
    );
    assert_eq!(db.int("select count(*) from t1"), 0);
    assert!(
        db.query("select 1 from t3").is_err(),
        "V3 ran after a failure"
    );
    let st = status_json(&s, &pg);
    assert_eq!(
        states(&st, "app"),
        vec![
            (1, "applied".into()),
            (2, "pending".into()),
            (3, "pending".into())
        ]
    );

    // An error with a position inside a multi-line statement names the exact line.
    s.write(
        "db/migrations/V2__broken.sql",
        "create table t2 (x int);\n\nselect x,\n       nope\n  from t2;\n",
    );
    let err = migrate(&s, &pg).failure().stderr();
    assert!(
        err.contains("db/migrations/V2__broken.sql:4")
            && err.contains("column \"nope\" does not exist"),
        "{err}"
    );

    // Fixed, the run goes on from V2.
    s.write("db/migrations/V2__broken.sql", "create table t2 (x int);\n");
    migrate(&s, &pg)
        .success()
        .stdout_contains("applied 0 platform and 2 app migrations");
}

#[test]
fn an_edited_applied_file_bad_names_and_duplicate_versions_are_errors() {
    let pg = Postgres::start();
    let s = stack();
    s.write("db/migrations/V1__init.sql", "create table a (x int);\n");
    migrate(&s, &pg).success();

    s.write(
        "db/migrations/V1__init.sql",
        "create table a (x int, y int);\n",
    );
    let err = migrate(&s, &pg).failure().stderr();
    assert!(
        err.contains("db/migrations/V1__init.sql was changed after it was applied"),
        "{err}"
    );
    assert_eq!(
        states(&status_json(&s, &pg), "app"),
        vec![(1, "changed".into())]
    );
    s.write("db/migrations/V1__init.sql", "create table a (x int);\n");

    s.write("db/migrations/init2.sql", "select 1;\n");
    let err = migrate(&s, &pg).failure().stderr();
    assert!(
        err.contains(
            "db/migrations/init2.sql: a migration file must be named V<version>__<name>.sql"
        ),
        "{err}"
    );
    std::fs::remove_file(s.file("db/migrations/init2.sql")).unwrap();

    s.write("db/migrations/V2__b.sql", "select 1;\n");
    s.write("db/migrations/V02__c.sql", "select 1;\n");
    let err = migrate(&s, &pg).failure().stderr();
    assert!(err.contains("have the same version 2"), "{err}");
    std::fs::remove_file(s.file("db/migrations/V02__c.sql")).unwrap();
    migrate(&s, &pg)
        .success()
        .stdout_contains("applied 0 platform and 1 app migrations");
}

#[test]
fn unreachable_database_and_wrong_password_say_what_was_tried() {
    let s = stack();
    // Port 1 on loopback: nothing listens there.
    let out = s
        .cmd([
            "migrate",
            "--database-url",
            "postgres://postgres:x@127.0.0.1:1/app",
        ])
        .run()
        .failure();
    assert!(
        out.stderr()
            .contains("cannot reach PostgreSQL at 127.0.0.1:1")
            && out.stderr().contains("refused"),
        "{}",
        out.stderr()
    );

    let pg = Postgres::start();
    let out = s
        .cmd(["migrate", "--database-url", &pg.url_as("postgres", "wrong")])
        .run()
        .failure();
    assert!(
        out.stderr().contains(&format!(
            "PostgreSQL at 127.0.0.1:{} refused the password of postgres",
            pg.port
        )),
        "{}",
        out.stderr()
    );
}

#[test]
fn a_migration_waits_for_a_table_lock_at_most_lock_timeout() {
    let pg = Postgres::start();
    let s = stack();
    s.write("db/migrations/V1__t.sql", "create table t (x int);\n");
    migrate(&s, &pg).success();
    // Another session holds a lock on t; the next migration needs an exclusive one.
    let holder = pg.db();
    holder
        .batch("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE")
        .unwrap();
    s.write(
        "db/migrations/V2__alter.sql",
        "alter table t add column y int;\n",
    );
    let started = std::time::Instant::now();
    let out = s
        .cmd([
            "migrate",
            "--lock-timeout",
            "1",
            "--database-url",
            &pg.url(),
        ])
        .run()
        .failure();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "waited {:?}",
        started.elapsed()
    );
    let err = out.stderr();
    assert!(
        err.contains("db/migrations/V2__alter.sql:1") && err.contains("lock timeout"),
        "{err}"
    );
    assert!(err.contains("--lock-timeout"), "{err}");
    holder.batch("ROLLBACK").unwrap();
    migrate(&s, &pg)
        .success()
        .stdout_contains("applied 0 platform and 1 app migrations");
}

#[test]
fn the_migrate_container_needs_every_login_password() {
    let s = Stackctl::new();
    let mut run = s.cmd(["migrate", "--from-env"]);
    for (k, v) in [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", "1"),
        ("PGPASSWORD", "x"),
    ] {
        run.cmd.env(k, v);
    }
    for k in [
        "MIGRATOR_PASSWORD",
        "AUTHENTICATOR_PASSWORD",
        "POSTGATE_DB_PASSWORD",
        "RUNNER_DB_PASSWORD",
        "APP_DB_PASSWORD",
    ] {
        run.cmd.env_remove(k);
    }
    run.cmd.env("STACKCTL_MIGRATIONS_DIR", s.path());
    run.run()
        .failure()
        .stderr_contains("the environment has no MIGRATOR_PASSWORD");
}

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

// ---------------------------------------------------------------------------------------------
// The privilege matrix.

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
            // NOLOGIN roles have no password; try one anyway.
            _ => "any-password".to_string(),
        };
        let login = Db::connect(&pg.url_as(role, &password)).is_ok();
        observed.insert(role, (ops, set_roles, login));
    }

    // Print the matrix for the README before asserting, so a failure shows the whole picture.
    let mut md = String::from(
        "# Privileges after `stackctl migrate`\n\n\
         Generated by `tests/integration/migrate.rs` (`privilege_matrix`) against PostgreSQL 17; every cell is\n\
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
         `pg_read_all_data`, `pg_write_all_data` and `pg_execute_server_program`. No role but the superuser can create roles.\n",
    );
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/privileges.md");
    std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
    std::fs::write(&docs, &md).unwrap();

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

// ---------------------------------------------------------------------------------------------
// The Dokploy path: the rendered compose file's one-off `migrate` service.

/// A compose project started by a test, taken down with its volumes when dropped; and the image
/// the test built for it.
struct ComposeProject {
    project: String,
    file: std::path::PathBuf,
    image: String,
}

impl ComposeProject {
    fn cmd(&self) -> Command {
        let mut c = crate::support::compose_v2();
        c.arg("-p").arg(&self.project).arg("-f").arg(&self.file);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("docker compose");
        assert!(
            out.status.success(),
            "docker compose {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["down", "--volumes", "--remove-orphans"])
            .output();
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.image])
            .output();
    }
}

/// Builds the stackctl image from the binary under test, as `stackctl build stackctl` does
/// (stack/stackctl/Dockerfile + the host-built binary).
fn build_stackctl_image(tag: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stack/stackctl/Dockerfile"),
        ctx.path().join("Dockerfile"),
    )
    .unwrap();
    std::fs::copy(bin(), ctx.path().join("stackctl")).unwrap();
    let out = Command::new("docker")
        .args([
            "build",
            "-q",
            "--network",
            "host",
            "--build-arg",
            "BASE=debian:trixie-slim",
            "-t",
            tag,
        ])
        .arg(ctx.path())
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "building {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything about the managed roles that migrate sets: attributes, memberships with their
/// options, SCRAM verifiers; and the ACLs of the schemas and default privileges.
const ROLE_STATE_SQL: &str = "
    SELECT format('%s login=%s inherit=%s createrole=%s super=%s member_of=[%s] pw=%s',
                  r.rolname, r.rolcanlogin, r.rolinherit, r.rolcreaterole, r.rolsuper,
                  coalesce((SELECT string_agg(g.rolname || '/' || m.inherit_option || '/' || m.set_option, ',' ORDER BY g.rolname)
                              FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), ''),
                  coalesce(a.rolpassword, '-'))
      FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid
     WHERE r.rolname !~ '^pg_' AND r.rolname <> 'postgres'
    UNION ALL
    SELECT format('schema %s owner=%s acl=%s', nspname, nspowner::regrole, coalesce(nspacl::text, ''))
      FROM pg_namespace WHERE nspname IN ('public', 'postgate', 'runner', 'stackctl', 'shop')
    UNION ALL
    SELECT format('default acl %s %s %s', defaclrole::regrole, defaclobjtype, defaclacl::text) FROM pg_default_acl
    ORDER BY 1";

/// `migrate status --json` without what differs between runs (times, paths, the server's name).
fn comparable(status: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for set in ["platform", "app"] {
        for e in status[set].as_array().unwrap() {
            out.push(format!(
                "{set} V{} {} {} {}",
                e["version"], e["name"], e["state"], e["checksum"]
            ));
        }
    }
    out
}

#[test]
fn dokploy_migrate_service_reaches_the_same_state_as_migrate_with_a_url() {
    crate::support::require_docker();
    crate::support::postgres_image();
    let s = stack();
    let project = format!("stackctl-test-dokploy-{}", std::process::id());
    let image = format!("stackctl/stackctl:test-{}", std::process::id());
    let toml = s.read("stack.toml");
    let toml: String = toml
        .lines()
        .map(|l| {
            if l.starts_with("stackctl = ") {
                format!("stackctl = \"{image}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    s.write("stack.toml", &format!("{toml}\n"));
    s.write(
        "db/migrations/V1__shop.sql",
        "create schema shop;\ncreate table shop.items (id serial primary key, name text);\n",
    );
    s.write(
        "db/migrations/V2__seed.sql",
        "insert into shop.items (name) values ('a');\n",
    );
    s.cmd(["render", "--target", "dokploy"]).run().success();
    // Dokploy writes the .env beside the compose file; the migrate container (uid 10001) reads
    // the bind-mounted migrations, so the test's private temp dir must be readable.
    std::fs::copy(s.file(".env"), s.file("dokploy/code/.env")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exists = Command::new("docker")
        .args(["network", "inspect", "dokploy-network"])
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        // Dokploy's own network (external in the compose file); made once on a test machine.
        let _ = Command::new("docker")
            .args(["network", "create", "dokploy-network"])
            .output();
    }
    build_stackctl_image(&image);
    let compose = ComposeProject {
        project,
        file: s.file("dokploy/code/docker-compose.yml"),
        image,
    };

    // What Dokploy does, limited to the database part: postgres, then the one-off migrate job.
    compose.run(&["up", "-d", "migrate"]);
    // The job's container state, polled with a deadline (`docker compose wait` reports it in
    // words that vary between versions).
    let container = format!("{}-migrate-1", compose.project);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let state = loop {
        let out = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                &container,
            ])
            .output()
            .unwrap();
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if state.starts_with("exited") || std::time::Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let logs = compose.run(&["logs", "migrate"]);
    assert_eq!(state, "exited 0", "migrate job failed:\n{logs}");
    assert!(
        logs.contains(&format!(
            "applied {} platform and 2 app migrations",
            platform_count()
        )),
        "{logs}"
    );
    let dokploy_status: serde_json::Value = serde_json::from_str(&compose.run(&[
        "run",
        "--rm",
        "--no-deps",
        "migrate",
        "migrate",
        "status",
        "--json",
        "--from-env",
    ]))
    .unwrap();
    let dokploy_roles = compose.run(&[
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        "postgres",
        "-d",
        "app",
        "-XAtc",
        ROLE_STATE_SQL,
    ]);

    // The same stack directory migrated with --database-url into a fresh server.
    let pg = Postgres::start();
    migrate(&s, &pg).success();
    let url_status = status_json(&s, &pg);
    let url_roles = pg.db().strings(ROLE_STATE_SQL);

    assert_eq!(comparable(&dokploy_status), comparable(&url_status));
    assert_eq!(comparable(&url_status).len(), platform_count() + 2);
    assert_eq!(
        dokploy_roles
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
        url_roles
    );
    assert!(
        url_roles
            .iter()
            .any(|l| l.starts_with("db_authenticator login=t inherit=f")),
        "{url_roles:?}"
    );
}

/// How many platform migrations the binary embeds: the `V*.sql` files of `migrations/`.
fn platform_count() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations/")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with('V') && n.ends_with(".sql")
        })
        .count()
}
