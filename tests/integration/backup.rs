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

/// `stackctl backup --type KIND`, which must say it took one of that kind.
fn take_backup(p: &Proj, kind: &str) {
    let out = p.s.cmd(["backup", "--type", kind]).run().success().stdout();
    assert!(out.contains(&format!("({kind})")), "{out}");
}

/// The core services run and Docker has them healthy.
fn assert_core_healthy(p: &Proj) {
    for svc in ["postgres", "pgbouncer"] {
        let id = &p.containers()[&format!("{svc}-1")];
        assert_eq!(
            docker(&["inspect", "-f", "{{.State.Health.Status}}", id]),
            "healthy",
            "{svc}"
        );
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON: {e}\n{text}"))
}

/// A core stack (PostgreSQL with archiving every 5 s, PgBouncer) from `init`, up and healthy,
/// built from our images under this test file's own tags; its PostgreSQL port and password.
fn stack_with_backups(tag: &str) -> (Proj, u16, String) {
    let p = Proj::new(tag);
    std::fs::remove_file(p.s.file("stack.toml")).unwrap(); // init writes the full one
    p.s.cmd(["init", "--pooler", "pgbouncer", "--project", &p.name])
        .run()
        .success();
    let [pg_port, _] = p.s.free_ports(["postgres", "pooler"]);
    // A short archive_timeout keeps the test fast; the WAL switches below do the rest.
    p.s.edit("stack.toml", "archive_timeout = 60", "archive_timeout = 5");
    assert!(p.s.read(".env").contains("BACKUP_PASSPHRASE="));
    let pw = p.s.env_values()["POSTGRES_PASSWORD"].clone();

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
    (p, pg_port, pw)
}

/// "It must show" 1: 100,000 rows, a full backup, 10,000 more, time T, 1,000 more, the table
/// dropped; `restore --to T --yes` gives back exactly 110,000 rows, the services are healthy
/// again and `migrate` has nothing pending. On the way: `restore` without `--yes`, and with a
/// `--to` before the oldest backup, or with a wrong passphrase in `.env`, change nothing and exit
/// non-zero, as they do while another command holds the stack's lock; a restore that fails after
/// stopping the stack puts the previous data back.
#[test]
fn point_in_time_restore_gives_back_exactly_the_rows_committed_before_t() {
    let (p, pg_port, pw) = stack_with_backups("bk");
    let sql = |q: &str| psql(pg_port, "postgres", &pw, q);
    assert_eq!(sql("SHOW archive_mode"), "on");
    assert_eq!(sql("SHOW archive_timeout"), "5s");

    // `status` says there is no backup yet.
    p.s.cmd(["status"])
        .run()
        .success()
        .stdout_contains("warning: no backup yet");
    // Nothing to restore from yet: a clear error, nothing changed.
    p.s.cmd(["restore", "--latest", "--yes"])
        .run()
        .failure()
        .stderr_contains("no backup to restore from");

    sql("CREATE TABLE t (id bigint PRIMARY KEY, note text)");
    sql("INSERT INTO t SELECT g, 'first' FROM generate_series(1, 100000) g");
    take_backup(&p, "full");
    // pgBackRest records the backup's end in whole seconds and the window starts at the next
    // one: T must lie past it, as any real T a second after a backup does.
    std::thread::sleep(std::time::Duration::from_millis(1100));

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
    let at =
        |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert!(at(&earliest) <= at(&t), "{earliest} vs T {t}");
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
    // A wrong passphrase in .env: refused before anything stops.
    let env_before = p.s.read(".env");
    let good = p.s.env_values()["BACKUP_PASSPHRASE"].clone();
    p.s.edit(
        ".env",
        &format!("BACKUP_PASSPHRASE={good}"),
        "BACKUP_PASSPHRASE=not-the-passphrase",
    );
    p.s.cmd(["restore", "--to", &t, "--yes"])
        .run()
        .failure()
        .stderr_contains("cannot be read with the BACKUP_PASSPHRASE")
        .stderr_contains("nothing was changed");
    std::fs::write(p.s.file(".env"), &env_before).unwrap();
    // Another command holds the stack's lock (here `flock`, as a running migrate would):
    // restore and migrate are refused at once.
    // --no-fork: flock becomes the command, so killing it lets go of the lock.
    let mut holder = std::process::Command::new("flock")
        .arg("--no-fork")
        .arg(p.s.file(".stackctl.lock"))
        .args(["sleep", "60"])
        .spawn()
        .expect("flock (util-linux)");
    let lock_file = p.s.file(".stackctl.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !lock_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    for args in [vec!["restore", "--to", &t, "--yes"], vec!["migrate"]] {
        p.s.cmd(args)
            .run()
            .failure()
            .stderr_contains("is running on this stack")
            .stderr_contains("nothing was changed");
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
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
    assert_core_healthy(&p);
    assert_aside_gone(&p.name);
    p.s.cmd(["migrate", "--dry-run"])
        .run()
        .success()
        .stdout_contains("no migrations pending");

    // Archiving goes on on the new timeline: a backup after the restore works.
    take_backup(&p, "incr");
}

/// pgbench's own consistency check: every transaction moved the same amount in accounts,
/// tellers and branches (and logged it in history).
fn pgbench_sums(sql: &dyn Fn(&str) -> String) -> [String; 4] {
    [
        "SELECT sum(abalance) FROM pgbench_accounts",
        "SELECT sum(tbalance) FROM pgbench_tellers",
        "SELECT sum(bbalance) FROM pgbench_branches",
        "SELECT coalesce(sum(delta), 0) FROM pgbench_history",
    ]
    .map(sql)
}

fn assert_consistent(sql: &dyn Fn(&str) -> String) -> [String; 4] {
    let s = pgbench_sums(sql);
    assert!(s.iter().all(|x| x == &s[0]), "pgbench's sums differ: {s:?}");
    s
}

/// "It must show" 2, 3 and the interrupted re-run of 6:
/// - a full backup taken while pgbench writes is restored (`--latest`) and pgbench's consistency
///   check holds;
/// - that restore, killed (SIGKILL) while pgBackRest writes into the data volume, is run again:
///   it converges (the data from before it was kept aside, the services it had stopped run again);
/// - total loss: postgres killed while rows are written, its container and data volume removed
///   (the repository volume stays); `restore --latest --yes` gives back every row committed more
///   than archive_timeout before the loss. The measured RPO is printed.
#[test]
fn a_backup_under_load_an_interrupted_restore_and_a_total_loss_all_come_back() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let (p, pg_port, pw) = stack_with_backups("bl");
    let sql = |q: &str| psql(pg_port, "postgres", &pw, q);
    let pg = || p.containers()["postgres-1"].clone();
    let pgbench = |args: &[&str]| {
        let mut c = Command::new("docker");
        c.args(["exec", "-u", "postgres", &pg(), "pgbench"]);
        c.args(args).arg("app");
        c
    };
    let ok = pgbench(&["-i", "-s", "5", "-q"]).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // A full backup while pgbench writes.
    let load = pgbench(&["-c", "4", "-T", "20", "-n"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    take_backup(&p, "full");
    let load = load.wait_with_output().unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let tps = String::from_utf8_lossy(&load.stdout);
    println!(
        "pgbench during the backup: {}",
        tps.lines().find(|l| l.starts_with("tps")).unwrap_or("?")
    );
    let sums = assert_consistent(&sql);
    let history_rows = sql("SELECT count(*) FROM pgbench_history");

    // The restore, killed while pgBackRest writes into the data volume...
    let run = crate::support::interrupt_when(
        p.s.path(),
        &["restore", "--latest", "--yes"],
        "restore: pgbackrest restore into",
        "-KILL",
    );
    let (out, seen) = (run.out, run.stderr);
    assert!(!out.status.success(), "{seen}");
    // ...leaves the stack stopped with the data kept aside; run again, it converges.
    let again = p.s.cmd(["restore", "--latest", "--yes"]).run().success();
    let said = again.stderr();
    assert!(said.contains("keeping"), "{said}");
    assert_eq!(assert_consistent(&sql), sums);
    assert_eq!(sql("SELECT count(*) FROM pgbench_history"), history_rows);
    assert_core_healthy(&p);
    assert_aside_gone(&p.name);

    // Total loss while rows are being written: one row a tick, each with its commit time.
    sql("CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz NOT NULL)");
    // `restore` ends by proving archiving works on the new timeline (a CHECKPOINT wakes the
    // checkpointer, which otherwise may sleep through archive_timeout for up to
    // checkpoint_timeout after recovery; then `pgbackrest check`): a segment of the new timeline
    // is archived before it returns. The RPO below shows archive_timeout holds after it.
    let last = sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
    assert!(
        last.len() == 24 && !last.starts_with("00000001"),
        "no WAL segment of the new timeline archived when restore returned ({})",
        sql(
            "SELECT archived_count, last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver"
        )
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        sql("INSERT INTO ticks (at) VALUES (clock_timestamp())");
        std::thread::sleep(Duration::from_millis(100));
    }
    let container = pg();
    println!(
        "archiver before the loss (archived, last archived, at, failed, current WAL, now): {}",
        sql(
            "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, \
             pg_walfile_name(pg_current_wal_lsn()), now() FROM pg_stat_archiver"
        )
    );
    // The server was up until at least here; SIGKILL gives it no chance to archive anything.
    let lost_at = chrono::Utc::now();
    docker(&["kill", &container]);
    docker(&["rm", "-f", &container]);
    docker(&["volume", "rm", &format!("{}_pgdata", p.name)]);
    assert!(!docker(&["volume", "ls", "-q"]).contains(&format!("{}_pgdata", p.name)));

    let out =
        p.s.cmd(["restore", "--latest", "--yes", "--wait-timeout", "180"])
            .run()
            .success()
            .stdout();
    assert!(out.contains("restored to"), "{out}");
    if sql("SELECT count(*) FROM pg_class WHERE relname = 'ticks'") == "0" {
        let logs = Command::new("docker")
            .args(["logs", &pg()])
            .output()
            .unwrap();
        panic!(
            "the restore lost every row written after it (no table ticks); the restored \
             server's log:\n{}",
            String::from_utf8_lossy(&logs.stderr)
        );
    }
    let last: chrono::DateTime<chrono::Utc> = sql(
        "SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM ticks",
    )
    .parse()
    .unwrap();
    let rpo = (lost_at - last).num_milliseconds() as f64 / 1000.0;
    println!(
        "total loss: the last row restored was committed {rpo:.1} s before the loss (archive_timeout 5 s)"
    );
    // Every row committed more than archive_timeout (5 s) before the loss is back, give or take
    // the push of the last switched segment to the repository (measured here: up to 0.6 s).
    assert!(rpo <= 7.0, "RPO {rpo} s");
    let gaps = sql(
        "SELECT count(*) FROM (SELECT id - lag(id) OVER (ORDER BY id) AS d FROM ticks) g WHERE d <> 1",
    );
    assert_eq!(gaps, "0", "rows are missing in the middle");
    assert_eq!(assert_consistent(&sql), sums);
    assert_eq!(sql("SELECT pg_is_in_recovery()"), "f");
    p.s.cmd(["migrate", "--dry-run"])
        .run()
        .success()
        .stdout_contains("no migrations pending");
}

/// "It must show" 5: the `backup` service, on a schedule of every minute, takes a full backup by
/// itself and logs it as one JSON line; `backup verify` restores that backup into a scratch
/// container and passes (amcheck, rows per table as written), leaving no scratch volume behind;
/// `restore --set LABEL` brings back that backup as it ended.
/// The Dokploy render holds the service, and no host path in it.
#[test]
fn the_scheduled_backup_service_takes_a_backup_that_verifies() {
    use std::time::{Duration, Instant};

    let (p, pg_port, pw) = stack_with_backups("bs");
    let sql = |q: &str| psql(pg_port, "postgres", &pw, q);
    sql("CREATE TABLE kept (id int PRIMARY KEY, note text)");
    sql("INSERT INTO kept SELECT g, 'row ' || g FROM generate_series(1, 4321) g");
    p.s.edit(
        "stack.toml",
        "full_schedule = \"0 3 * * 0\"",
        "full_schedule = \"* * * * *\"",
    );
    p.s.cmd([
        "up",
        "--without",
        "observability",
        "--without",
        "apps",
        "--wait-timeout",
        "120",
    ])
    .run()
    .success();

    // The service's JSON line for the backup it took (within two minutes: every minute).
    let deadline = Instant::now() + Duration::from_secs(150);
    let line = loop {
        let logs = p.s.cmd(["logs", "backup"]).run().success().stdout();
        let found = logs
            .lines()
            .filter_map(|l| l.split_once('{').map(|(_, rest)| format!("{{{rest}")))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .find(|v| v["msg"] == "backup finished" || v["msg"] == "backup failed");
        if let Some(v) = found {
            break v;
        }
        assert!(Instant::now() < deadline, "no backup logged:\n{logs}");
        std::thread::sleep(Duration::from_secs(3));
    };
    assert_eq!(line["msg"], "backup finished", "{line:#}");
    assert_eq!(line["type"], "full", "{line:#}");
    let label = line["label"].as_str().expect("label").to_string();
    let list = json(
        &p.s.cmd(["backup", "list", "--json"])
            .run()
            .success()
            .stdout(),
    );
    assert!(
        list["sets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["label"] == label.as_str()),
        "{list:#}"
    );

    // `status` names the newest backup, with no warning.
    let status = p.s.cmd(["status"]).run().success().stdout();
    assert!(status.contains("backups: newest"), "{status}");
    assert!(!status.contains("warning:"), "{status}");

    let report = json(
        &p.s.cmd(["backup", "verify", "--json"])
            .run()
            .success()
            .stdout(),
    );
    let app = report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["database"] == "app")
        .unwrap_or_else(|| panic!("{report:#}"))
        .clone();
    assert_eq!(app["tables"]["public.kept"], 4321, "{report:#}");
    assert!(app["indexes_checked"].as_u64().unwrap() > 0, "{report:#}");
    let scratch = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("name={}_backup-verify", p.name),
    ]);
    assert!(scratch.is_empty(), "left behind: {scratch}");
    let human = p.s.cmd(["backup", "verify"]).run().success().stdout();
    assert!(human.contains("verified"), "{human}");

    // `restore --set`: that backup as it ended; rows written after it are gone. A label the
    // repository does not have is refused, nothing changed.
    sql("INSERT INTO kept SELECT g, 'later' FROM generate_series(4322, 4400) g");
    p.s.cmd(["restore", "--set", "20000101-000000F", "--yes"])
        .run()
        .failure()
        .stderr_contains("no backup set of that label")
        .stderr_contains(&label);
    assert_eq!(sql("SELECT count(*) FROM kept"), "4400");
    p.s.cmd(["restore", "--set", &label, "--yes"])
        .run()
        .success()
        .stdout_contains(&format!("restored to backup {label}"));
    assert_eq!(sql("SELECT count(*) FROM kept"), "4321");

    // The Dokploy render: the service is there, with named volumes only.
    p.s.cmd(["render", "--target", "dokploy"]).run().success();
    let file = p.s.yaml("dokploy/code/docker-compose.yml");
    let svc = &file["services"]["backup"];
    assert!(svc.is_mapping(), "no backup service in the Dokploy render");
    for v in svc["volumes"].as_sequence().unwrap() {
        let source = v.as_str().unwrap().split(':').next().unwrap();
        assert!(
            !source.contains('/') && !source.starts_with('.'),
            "a host path in the backup service: {v:?}"
        );
    }
}

/// `db dump` / `db restore`, the logical dumps: a dump is written whole (never a partial file,
/// not over an existing one, not into a missing directory), only the schemas asked for; a restore
/// runs in one transaction (objects that exist make it fail with nothing changed), and `--clean`
/// needs `--yes`, then puts the dump's objects back as they were dumped, leaving others alone.
#[test]
fn logical_dumps_are_written_whole_and_restored_in_one_transaction() {
    let (p, pg_port, pw) = stack_with_backups("dd");
    let sql = |q: &str| psql(pg_port, "postgres", &pw, q);
    sql(
        "CREATE SCHEMA shop; CREATE TABLE shop.items (id int PRIMARY KEY, name text); \
         INSERT INTO shop.items SELECT g, 'item ' || g FROM generate_series(1, 500) g; \
         CREATE SCHEMA other; CREATE TABLE other.notes (id int PRIMARY KEY)",
    );
    let file = p.s.file("exports/shop.dump");
    let file_arg = file.to_str().unwrap();
    let dump = |extra: &[&str]| {
        let mut args = vec!["db", "dump", "--file", file_arg];
        args.extend_from_slice(extra);
        p.s.cmd(args).run()
    };

    // A missing directory: a clear error, nothing written.
    dump(&["--schema", "shop"])
        .failure()
        .stderr_contains("the file's directory must exist");
    std::fs::create_dir(p.s.file("exports")).unwrap();
    // A schema that does not exist: pg_dump's error, no file, no partial file.
    dump(&["--schema", "nope"])
        .failure()
        .stderr_contains("nothing was written");
    let left: Vec<_> = std::fs::read_dir(p.s.file("exports")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    dump(&["--schema", "shop"])
        .success()
        .stdout_contains("dumped database app to");
    assert!(file.is_file());
    dump(&["--schema", "shop"])
        .failure()
        .stderr_contains("exists; nothing was written");

    // Objects that exist: the one-transaction restore fails and changes nothing.
    sql("DELETE FROM shop.items WHERE id > 100");
    p.s.cmd(["db", "restore", "--file", file_arg])
        .run()
        .failure()
        .stderr_contains("already exists")
        .stderr_contains("nothing was changed");
    assert_eq!(sql("SELECT count(*) FROM shop.items"), "100");
    p.s.cmd(["db", "restore", "--file", file_arg, "--clean"])
        .run()
        .failure()
        .stderr_contains("--yes");
    assert_eq!(sql("SELECT count(*) FROM shop.items"), "100");

    p.s.cmd(["db", "restore", "--file", file_arg, "--clean", "--yes"])
        .run()
        .success()
        .stdout_contains("restored");
    assert_eq!(sql("SELECT count(*) FROM shop.items"), "500");
    assert_eq!(sql("SELECT to_regclass('other.notes') IS NOT NULL"), "t");

    // Without --file: under dumps/ in the stack directory.
    let out = p.s.cmd(["db", "dump"]).run().success().stdout();
    let written: Vec<_> = std::fs::read_dir(p.s.file("dumps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(
        written[0].starts_with("app-") && written[0].ends_with(".dump"),
        "{written:?}"
    );
    assert!(out.contains(&written[0]), "{out}");
}
