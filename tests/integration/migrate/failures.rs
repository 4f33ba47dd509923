//! Runs that fail, and what they say: a failing migration (rolled back, file and line named),
//! edited or misnamed files, an unreachable server or a wrong password, a lock wait bounded by
//! `--lock-timeout`, a migrate container missing a password.

use super::{migrate, stack, states, status_json};
use crate::support::{Postgres, Stackctl};

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
