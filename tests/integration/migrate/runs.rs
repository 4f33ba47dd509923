//! Runs that succeed: a second run applies nothing, `--dry-run` and `migrate new`, and five
//! concurrent runs that apply each migration exactly once.

use std::process::{Command, Stdio};

use super::{migrate, platform_count, stack, states, status_json};
use crate::support::{Postgres, bin};

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
