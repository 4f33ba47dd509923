//! Backups and point-in-time recovery with pgBackRest (issue 17), on the core stack with our
//! real PostgreSQL image: continuous archiving, `backup`, `backup list --json`, and
//! `restore --to T` ("It must show" 1), with the bad inputs that must change nothing.

use crate::engine::Proj;
use crate::engine::core_stack::psql;
use crate::support::docker;

/// The copy of the data a restore sets aside is removed once the restore has ended.
fn assert_aside_gone(project: &str) {
    let filter = format!("name={project}_pgdata-before-restore");
    let aside = docker(&["volume", "ls", "-q", "--filter", &filter]);
    assert!(aside.is_empty(), "left behind: {aside}");
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"))
}

/// "It must show" 1: 100,000 rows, a full backup, 10,000 more, time T, 1,000 more, the table
/// dropped; `restore --to T --yes` gives back exactly 110,000 rows, the services are healthy
/// again and `migrate` has nothing pending. On the way: `restore` without `--yes`, and with a
/// `--to` before the oldest backup, or with a wrong passphrase in `.env`, change nothing and exit
/// non-zero; a restore that fails after stopping the stack puts the previous data back.
#[test]
fn point_in_time_restore_gives_back_exactly_the_rows_committed_before_t() {
    let p = Proj::new("bk");
    std::fs::remove_file(p.s.file("stack.toml")).unwrap(); // init writes the full one
    p.s.cmd(["init", "--pooler", "pgbouncer", "--project", &p.name])
        .run()
        .success();
    let [pg_port, _] = p.s.free_ports(["postgres", "pooler"]);
    // A short archive_timeout keeps the test fast; the WAL switches below do the rest.
    p.s.edit("stack.toml", "archive_timeout = 60", "archive_timeout = 5");
    assert!(p.s.read(".env").contains("BACKUP_PASSPHRASE="));
    let pw = p.s.env_values()["POSTGRES_PASSWORD"].clone();
    let sql = |q: &str| psql(pg_port, "postgres", &pw, q);

    // Our images under tags of this test's own: building them from this binary leaves the
    // shared tags alone, and a build from another checkout cannot swap them under the test.
    let version = env!("CARGO_PKG_VERSION");
    p.s.edit(
        "stack.toml",
        &format!("stackctl = \"stackctl/stackctl:{version}\""),
        "stackctl = \"stackctl/stackctl:backup-test\"",
    );
    p.s.edit(
        "stack.toml",
        "postgres = \"stackctl/postgres:17\"",
        "postgres = \"stackctl/postgres:17-backup-test\"",
    );
    p.s.cmd(["build", "postgres", "pgbouncer"]).run().success();
    p.s.up_core(&["--wait-timeout", "120"]).run().success();
    assert_eq!(sql("SHOW archive_mode"), "on");
    assert_eq!(sql("SHOW archive_timeout"), "5s");

    // Nothing to restore from yet: a clear error, nothing changed.
    p.s.cmd(["restore", "--latest", "--yes"])
        .run()
        .failure()
        .stderr_contains("no backup to restore from");

    sql("CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    sql("INSERT INTO t SELECT g, 'first' FROM generate_series(1, 100000) g");
    let out =
        p.s.cmd(["backup", "--type", "full"])
            .run()
            .success()
            .stdout();
    assert!(out.contains("(full)"), "{out}");

    sql("INSERT INTO t SELECT g, 'second' FROM generate_series(100001, 110000) g");
    let t = sql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    sql("INSERT INTO t SELECT g, 'third' FROM generate_series(110001, 111000) g");
    sql("DROP TABLE t");
    sql("SELECT pg_switch_wal()");

    let list = json(
        &p.s.cmd(["backup", "list", "--json"])
            .run()
            .success()
            .stdout(),
    );
    let sets = list["sets"].as_array().expect("sets");
    assert_eq!(sets.len(), 1, "{list:#}");
    assert_eq!(sets[0]["type"], "full");
    assert!(
        sets[0]["database_bytes"].as_u64().unwrap() > 1_000_000,
        "{list:#}"
    );
    assert!(sets[0]["wal_start"].is_string(), "{list:#}");
    let earliest = list["restorable"]["earliest"]
        .as_str()
        .expect("window")
        .to_string();
    assert!(earliest.as_str() < t.as_str(), "{earliest} vs T {t}");
    let human = p.s.cmd(["backup", "list"]).run().success().stdout();
    assert!(human.contains("restorable:"), "{human}");

    // Without --yes: the plan, a non-zero exit, nothing changed.
    let postgres_before = p.containers()["postgres-1"].clone();
    p.s.cmd(["restore", "--to", &t])
        .run()
        .failure()
        .stderr_contains("restore plan")
        .stderr_contains("nothing was changed");
    // Outside the window: the window is named, nothing changed.
    p.s.cmd(["restore", "--to", "2000-01-01T00:00:00Z", "--yes"])
        .run()
        .failure()
        .stderr_contains("outside the restorable window")
        .stderr_contains(&earliest);
    p.s.cmd(["restore", "--to", "not a time", "--yes"])
        .run()
        .failure()
        .stderr_contains("not a time stackctl understands");
    assert_eq!(
        sql("SELECT count(*) FROM pg_class WHERE relname = 't'"),
        "0"
    );
    assert_eq!(p.containers()["postgres-1"], postgres_before);

    // A restore that fails once it has changed the data (here: the restored server cannot be
    // healthy within 1 s) puts the previous data back and starts the services again.
    p.s.cmd(["restore", "--to", &t, "--yes", "--wait-timeout", "1"])
        .run()
        .failure()
        .stderr_contains("put back as it was before");
    assert_eq!(
        sql("SELECT count(*) FROM pg_class WHERE relname = 't'"),
        "0"
    );
    assert_eq!(sql("SELECT pg_is_in_recovery()"), "f");
    assert_aside_gone(&p.name);

    let out =
        p.s.cmd(["restore", "--to", &t, "--yes", "--wait-timeout", "180"])
            .run()
            .success()
            .stdout();
    assert!(out.contains("restored to"), "{out}");
    assert_eq!(sql("SELECT count(*) FROM t"), "110000");
    assert_eq!(sql("SELECT count(*) FROM t WHERE note = 'third'"), "0");
    assert_eq!(sql("SELECT pg_is_in_recovery()"), "f");

    // The services are back and healthy; the copy set aside is gone.
    for svc in ["postgres", "pgbouncer"] {
        let id = &p.containers()[&format!("{svc}-1")];
        assert_eq!(
            docker(&["inspect", "-f", "{{.State.Health.Status}}", id]),
            "healthy",
            "{svc}"
        );
    }
    assert_aside_gone(&p.name);
    p.s.cmd(["migrate", "--dry-run"])
        .run()
        .success()
        .stdout_contains("no migrations pending");

    // Archiving goes on on the new timeline: a backup after the restore works.
    let out =
        p.s.cmd(["backup", "--type", "incr"])
            .run()
            .success()
            .stdout();
    assert!(out.contains("(incr)"), "{out}");
}
