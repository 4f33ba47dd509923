//! `stackctl import-supabase` against real PostgreSQL 17 servers (containers of our image): a
//! Supabase-like source made by `supabase_source.sql`, a target that had `stackctl migrate`, and
//! pg_dump / pg_restore in containers started by stackctl itself.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Db, Postgres, Stackctl, assert_unchanged};

mod access;

const SOURCE_SQL: &str = include_str!("../supabase_source.sql");

/// A source seeded with the Supabase-like project (plus `extra` SQL), an empty target that had
/// `stackctl migrate`, and the stack directory whose .env holds the logins' passwords.
struct Pair {
    src: Postgres,
    tgt: Postgres,
    stack: Stackctl,
}

/// The password of the source's `postgres` (the superuser's, set when it was made).
fn postgres_url(src: &Postgres) -> String {
    src.url_as("postgres", &src.password)
}

impl Pair {
    fn new(extra: &str) -> Self {
        let (src, tgt) = std::thread::scope(|s| {
            let a = s.spawn(|| Postgres::start_as("supabase_admin", &[]));
            let b = s.spawn(Postgres::start);
            (a.join().unwrap(), b.join().unwrap())
        });
        // As on hosted Supabase: `postgres` owns the application but is no superuser
        // (supabase_admin is); it has BYPASSRLS, so it can dump every row.
        let admin = src.db();
        admin
            .batch(&format!(
                "CREATE ROLE postgres LOGIN SUPERUSER PASSWORD '{}'",
                src.password
            ))
            .expect("creating postgres on the source");
        Db::connect(&src.url_as("postgres", &src.password))
            .expect("connecting to the source as postgres")
            .batch(&format!("{SOURCE_SQL}\n{extra}"))
            .expect("seeding the source");
        admin
            .batch("ALTER ROLE postgres NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS")
            .expect("demoting postgres on the source");
        let stack = Stackctl::new();
        stack.cmd(["init"]).run().success();
        stack
            .cmd(["migrate", "--database-url", &tgt.url()])
            .run()
            .success();
        Self { src, tgt, stack }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "import-supabase".into(),
            "--from".into(),
            postgres_url(&self.src),
            "--database-url".into(),
            self.tgt.url(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn import(&self, extra: &[&str]) -> crate::support::Done {
        self.stack.cmd(self.args(extra)).run()
    }

    /// Files left in the import state directory.
    fn state_files(&self) -> Vec<String> {
        std::fs::read_dir(self.stack.file(".stackctl/import"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn json(out: &crate::support::Done) -> serde_json::Value {
    serde_json::from_str(&out.stdout())
        .unwrap_or_else(|e| panic!("--json output is not JSON: {e}\n{}", out.stdout()))
}

/// Names of the not-carried list, as `kind name`.
fn not_carried(v: &serde_json::Value) -> Vec<String> {
    v["not_carried"]
        .as_array()
        .expect("not_carried")
        .iter()
        .map(|n| {
            format!(
                "{} {}",
                n["kind"].as_str().unwrap(),
                n["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_supabase_like_project_imports_verified_and_its_policies_hold() {
    let p = Pair::new("");
    let before = p.stack.snapshot();

    // --dry-run: the preflight report, and nothing written anywhere.
    let dry = p.import(&["--dry-run"]).success();
    let out = dry.stdout();
    assert!(out.contains("import      app, public"), "{out}");
    assert!(
        out.contains("skip        auth, extensions, realtime, storage (managed by Supabase)"),
        "{out}"
    );
    assert!(
        out.contains("citext (extensions)") && out.contains("pgcrypto (extensions)"),
        "{out}"
    );
    assert!(
        out.contains("found       4 RLS policies, 2 triggers, 5 functions"),
        "{out}"
    );
    assert!(out.contains("event triggers  pgrst_ddl_watch"), "{out}");
    assert_eq!(
        p.tgt
            .db()
            .int("SELECT count(*) FROM pg_namespace WHERE nspname IN ('app', 'auth')"),
        0
    );
    assert_unchanged(&before, &p.stack.snapshot());

    // The import: verified, as JSON.
    let done = p.import(&["--json"]).success();
    let v = json(&done);
    let ver = &v["verification"];
    assert_eq!(ver["ok"], true, "{v:#}");
    let rows = |t: &str| {
        let r = ver["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["table"] == t)
            .unwrap_or_else(|| panic!("no {t}"));
        (
            r["source_rows"].as_i64().unwrap(),
            r["target_rows"].as_i64().unwrap(),
        )
    };
    assert_eq!(rows("app.todos"), (6000, 6000));
    assert_eq!(rows("auth.users"), (2000, 2000));
    assert_eq!(rows("public.profiles"), (2000, 2000));
    assert_eq!(rows("app.avatars"), (500, 500));
    let seqs = ver["sequences"].as_array().unwrap();
    assert!(
        seqs.iter().any(|s| s["sequence"] == "app.todos_id_seq"
            && s["column_max"] == 6000
            && s["ok"] == true),
        "{seqs:?}"
    );
    assert!(
        seqs.iter()
            .any(|s| s["sequence"] == "app.avatars_id_seq" && s["ok"] == true),
        "{seqs:?}"
    );
    let objects = ver["objects"].as_array().unwrap();
    let count = |schema: &str, kind: &str| {
        objects
            .iter()
            .find(|o| o["schema"] == schema && o["kind"] == kind)
            .map(|o| (o["source"].as_i64().unwrap(), o["target"].as_i64().unwrap()))
    };
    assert_eq!(count("app", "policies"), Some((1, 1)));
    assert_eq!(count("public", "policies"), Some((2, 2)));
    assert_eq!(count("app", "views"), Some((1, 1)));
    assert_eq!(count("app", "triggers"), Some((1, 1)));
    assert_eq!(count("app", "indexes"), Some((7, 7)));

    // What was not carried, by name (issue 7, point 2).
    let nc = not_carried(ver);
    for want in [
        "trigger on_auth_user_created on auth.users",
        "publication supabase_realtime",
        "event trigger pgrst_ddl_watch",
        "policy avatars are public on storage.objects",
        "foreign key avatars_bucket_id_fkey on app.avatars",
    ] {
        assert!(nc.iter().any(|n| n == want), "{want:?} not in {nc:?}");
    }
    // A verified import removes its dump.
    assert!(p.state_files().is_empty(), "{:?}", p.state_files());

    let db = p.tgt.db();
    // The compatibility layer.
    assert_eq!(
        db.strings(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgcrypto'"
        ),
        vec!["extensions"]
    );
    assert!(
        Db::connect(&p.tgt.url())
            .unwrap()
            .strings("SELECT current_setting('search_path')")[0]
            .contains("extensions")
    );
    assert_eq!(db.int("SELECT count(*) FROM pg_publication"), 0);
    assert_eq!(db.int("SELECT count(*) FROM pg_event_trigger"), 0);
    assert_eq!(db.int("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'auth.users'::regclass AND NOT tgisinternal"), 0);
    assert_eq!(db.strings("SELECT tableowner::text FROM pg_tables WHERE schemaname = 'app' AND tablename = 'todos'"), vec!["db_migrator"]);
    assert_eq!(
        db.int("SELECT count(*) FROM pg_proc WHERE proname = 'handle_new_user' AND prosecdef"),
        1
    );
    // Foreign keys to auth.users hold.
    assert_eq!(db.int("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = 'auth.users'::regclass"), 3);

    // The policy decides: with user A's claims, `authenticated` sees exactly A's todos.
    let a: String = p.src.db().strings("SELECT md5('user1')::uuid::text")[0].clone();
    let a_rows = p.src.db().int(&format!(
        "SELECT count(*) FROM app.todos WHERE user_id = '{a}'"
    ));
    assert!(a_rows > 0 && a_rows < 6000);
    let claims = format!(r#"{{"sub":"{a}","role":"authenticated","email":"user1@example.com"}}"#);
    db.batch(&format!(
        "BEGIN; SET LOCAL ROLE authenticated; SET LOCAL request.jwt.claims = '{claims}'"
    ))
    .unwrap();
    assert_eq!(db.int("SELECT count(*) FROM app.todos"), a_rows);
    assert_eq!(
        db.int("SELECT count(*) FROM app.todos WHERE user_id <> auth.uid()"),
        0
    );
    assert_eq!(
        db.int("SELECT count(*) FROM app.open_todos WHERE user_id <> auth.uid()"),
        0
    );
    assert_eq!(db.strings("SELECT auth.uid()::text || ' ' || auth.role() || ' ' || auth.email() || ' ' || (auth.jwt() ->> 'sub')"), vec![format!("{a} authenticated user1@example.com {a}")]);
    // The WITH CHECK half: A cannot write a todo for someone else.
    let other: String = db.strings("SELECT md5('user2')::uuid::text")[0].clone();
    let err = db
        .batch(&format!(
            "INSERT INTO app.todos (user_id, title) VALUES ('{other}', 'x')"
        ))
        .unwrap_err();
    assert!(format!("{err:?}").contains("row-level security"), "{err:?}");
    db.batch("ROLLBACK").unwrap();
    // anon reads the public profiles (its policy), and has no grant on app's tables (as on the source).
    db.batch("BEGIN; SET LOCAL ROLE anon").unwrap();
    assert_eq!(db.int("SELECT count(*) FROM public.profiles"), 2000);
    assert!(db.query("SELECT count(*) FROM app.todos").is_err());
    db.batch("ROLLBACK").unwrap();

    // A second import into the now non-empty target is refused, and changes nothing.
    let again = p.import(&[]).failure();
    assert!(
        again.stderr().contains("is not empty: schema app holds"),
        "{}",
        again.stderr()
    );
    assert!(
        again.stderr().contains("--clean --yes"),
        "{}",
        again.stderr()
    );
    assert_eq!(db.int("SELECT count(*) FROM app.todos"), 6000);
    // --clean needs --yes; with it the import replaces what is there and verifies again.
    p.import(&["--clean"]).failure().stderr_contains("--yes");
    p.import(&["--clean", "--yes"])
        .success()
        .stdout_contains(": verified");
    assert_eq!(db.int("SELECT count(*) FROM app.todos"), 6000);

    // Without --database-url the target is the stack's own PostgreSQL: the loopback port of
    // stack.toml's `ports.postgres`, as `postgres` with .env's POSTGRES_PASSWORD. Point both at
    // the target server and import once more, with --skip-auth-users.
    p.stack.edit(
        "stack.toml",
        "postgres = 5432",
        &format!("postgres = {}", p.tgt.port),
    );
    let env_pw = p.stack.env_values()["POSTGRES_PASSWORD"].clone();
    p.stack.edit(
        ".env",
        &format!("POSTGRES_PASSWORD={env_pw}"),
        &format!("POSTGRES_PASSWORD={}", p.tgt.password),
    );
    let own = p
        .stack
        .cmd([
            "import-supabase",
            "--from",
            &p.src.url(),
            "--clean",
            "--yes",
            "--skip-auth-users",
            "--json",
        ])
        .run()
        .success();
    let v = json(&own);
    assert_eq!(
        v["preflight"]["target"],
        format!("postgres@127.0.0.1:{}/app", p.tgt.port)
    );
    assert_eq!(v["verification"]["ok"], true, "{v:#}");
    // auth.users came without its rows, so the foreign keys to it are listed, not carried.
    assert_eq!(db.int("SELECT count(*) FROM auth.users"), 0);
    let nc = not_carried(&v["verification"]);
    assert!(
        nc.iter()
            .any(|n| n == "foreign key todos_user_id_fkey on app.todos"),
        "{nc:?}"
    );
    assert_eq!(db.int("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = 'auth.users'::regclass"), 0);
}

#[test]
fn sources_that_cannot_be_read_are_refused_before_anything_is_written() {
    let pg = Postgres::start();
    let s = Stackctl::new();
    s.cmd(["init"]).run().success();
    let before = s.snapshot();
    let run = |from: &str| {
        s.cmd([
            "import-supabase",
            "--from",
            from,
            "--database-url",
            &pg.url(),
        ])
        .run()
        .failure()
    };

    let unreachable = run("postgres://postgres:pw@127.0.0.1:1/app");
    assert!(
        unreachable
            .stderr()
            .contains("cannot reach PostgreSQL at 127.0.0.1:1"),
        "{}",
        unreachable.stderr()
    );
    assert!(
        unreachable
            .stderr()
            .contains("hint: check host, port, user and password in --from"),
        "{}",
        unreachable.stderr()
    );

    let wrong = run(&pg.url_as("postgres", "not-the-password"));
    assert!(
        wrong.stderr().contains("refused the password of postgres"),
        "{}",
        wrong.stderr()
    );

    let pooler =
        run("postgres://postgres.abcd:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres");
    assert!(
        pooler.stderr().contains("is a transaction pooler"),
        "{}",
        pooler.stderr()
    );
    assert!(
        pooler
            .stderr()
            .contains("aws-0-eu-central-1.pooler.supabase.com:5432"),
        "{}",
        pooler.stderr()
    );

    // A role that row-level security would filter cannot dump every row.
    pg.db()
        .batch("CREATE ROLE reader LOGIN PASSWORD 'reader'")
        .unwrap();
    let filtered = run(&pg.url_as("reader", "reader"));
    assert!(
        filtered
            .stderr()
            .contains("neither SUPERUSER nor BYPASSRLS"),
        "{}",
        filtered.stderr()
    );

    assert_unchanged(&before, &s.snapshot());
}

#[test]
fn an_interrupted_restore_is_resumed_from_the_kept_dump() {
    // A bigger table, so that the restore runs long enough to be cut.
    let p = Pair::new(
        "CREATE TABLE app.events (id bigserial PRIMARY KEY, payload text);\n\
         INSERT INTO app.events (payload) SELECT repeat(md5(g::text), 4) FROM generate_series(1, 400000) g;",
    );
    let mut child = Command::new(crate::support::bin())
        .arg("--dir")
        .arg(p.stack.path())
        .args(p.args(&[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting stackctl");
    // Cut every restore session (the restore's application name) once one is copying rows, so
    // that the cut run has restored some objects already.
    let watcher = p.tgt.db();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut cut = 0;
    while cut == 0 {
        assert!(
            Instant::now() < deadline,
            "no restore session copied rows within 120 s"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        cut = watcher.int(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
              WHERE application_name = 'stackctl import-supabase (restore)' \
                AND EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'stackctl import-supabase (restore)' \
                                                          AND query ILIKE 'COPY %')) t",
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        cut > 0,
        "the restore finished before it could be cut:\n{stderr}"
    );
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("pg_restore into the target failed"),
        "{stderr}"
    );
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let kept = p
        .state_files()
        .into_iter()
        .find(|f| f.ends_with(".dump"))
        .unwrap_or_else(|| panic!("dump not kept: {:?}", p.state_files()));
    // The dump holds user data: private like the other state files (issue 16, point 7).
    let mode = std::fs::metadata(p.stack.file(&format!(".stackctl/import/{kept}")))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600,
        "{kept}"
    );

    // The same command again: no second dump, the partial restore replaced, verified.
    let again = p.import(&["--json"]).success();
    let err = again.stderr();
    assert!(err.contains("reusing the dump"), "{err}");
    assert!(!err.contains("dumping "), "{err}");
    assert!(
        err.contains("resuming: removing what the unfinished run restored"),
        "{err}"
    );
    let v = json(&again);
    assert_eq!(v["verification"]["ok"], true, "{v:#}");
    assert!(
        v["verification"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["table"] == "app.events" && t["target_rows"] == 400000)
    );
    assert!(p.state_files().is_empty(), "{:?}", p.state_files());
}

#[test]
fn a_source_that_only_accepts_tls_is_read_over_tls() {
    let s = Stackctl::new();
    s.cmd(["init"]).run().success();
    // A TLS-only source: our image with the stack's server certificate, then `hostssl` only.
    let certs = format!("{}:/etc/postgresql/tls:ro", s.file("certs").display());
    let (src, tgt) = std::thread::scope(|sc| {
        let a = sc.spawn(|| Postgres::start_with(&["-v", &certs]));
        let b = sc.spawn(Postgres::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    let url = src.url();
    let deadline = Instant::now() + Duration::from_secs(60);
    let hba = Command::new("docker")
        .args(["exec", "-u", "postgres", &src.name, "bash", "-c"])
        .arg("sed -i 's/^host all all all scram-sha-256/hostssl all all all scram-sha-256/' \"$PGDATA/pg_hba.conf\" && pg_ctl reload -D \"$PGDATA\"")
        .output()
        .unwrap();
    assert!(
        hba.status.success(),
        "{}",
        String::from_utf8_lossy(&hba.stderr)
    );
    // Without TLS the source now refuses (the test client has no TLS).
    while Db::connect(&url).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the source still accepts connections without TLS"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.cmd([
        "import-supabase",
        "--from",
        &url,
        "--database-url",
        &tgt.url(),
        "--dry-run",
    ])
    .run()
    .success()
    .stdout_contains("(PostgreSQL 17.");
    let plain = s
        .cmd([
            "import-supabase",
            "--from",
            &format!("{url}?sslmode=disable"),
            "--database-url",
            &tgt.url(),
            "--dry-run",
        ])
        .run()
        .failure();
    assert!(
        plain.stderr().contains("no encryption"),
        "{}",
        plain.stderr()
    );
}

#[test]
fn a_clean_run_cut_during_its_dump_leaves_the_target_as_it_was_and_json_failures_are_one_object() {
    // A bigger table, so that the dump takes a moment.
    let p = Pair::new(
        "CREATE TABLE app.bulk (id bigserial PRIMARY KEY, payload text);\n\
         INSERT INTO app.bulk (payload) SELECT repeat(md5(g::text), 4) FROM generate_series(1, 200000) g;",
    );
    p.import(&[]).success();
    let db = p.tgt.db();
    let count = |db: &Db| {
        (
            db.int("SELECT count(*) FROM app.todos"),
            db.int("SELECT count(*) FROM app.bulk"),
            db.int("SELECT count(*) FROM auth.users"),
        )
    };
    let before = count(&db);
    assert!(
        before.0 > 0 && before.1 == 200_000 && before.2 > 0,
        "{before:?}"
    );

    // --json and refused (the target is not empty): one JSON object naming the stage and the way out.
    let refused = p.import(&["--json"]).failure();
    let v = json(&refused);
    assert_eq!(v["stage"], "safety", "{v:#}");
    assert!(
        v["error"].as_str().unwrap().contains("is not empty"),
        "{v:#}"
    );
    assert!(v["hint"].as_str().unwrap().contains("--clean"), "{v:#}");

    // Another stackctl's import tool in the same project (a second import, or another test):
    // the interrupted run must remove its own tool containers and leave this one running.
    let bystander = Bystander::start(&p.stack);

    // --clean --yes, interrupted (SIGINT, as Ctrl-C) as soon as it says it is dumping (issue 16,
    // point 5: before, the target's schemas were dropped before the dump began).
    let args = p.args(&["--clean", "--yes", "--json"]);
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let run = crate::support::interrupt_when(p.stack.path(), &args, "import: dumping", "-INT");
    let (out, seen, pid) = (run.out, run.stderr, run.pid.to_string());
    assert!(!out.status.success(), "{seen}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output is not one JSON object: {e}\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(v["stage"], "dump", "{v:#}\n{seen}");
    assert!(
        v["error"].as_str().unwrap().contains("interrupted"),
        "{v:#}"
    );
    assert!(!seen.contains("--clean: dropping"), "{seen}");
    assert_eq!(count(&db), before, "the target changed:\n{seen}");
    assert!(
        !p.state_files().iter().any(|f| f.ends_with(".partial")),
        "{:?}",
        p.state_files()
    );
    // Its own tool containers are gone, even one whose creation the signal cut short.
    let own: Vec<String> = String::from_utf8(
        Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                "label=io.stackctl.invocation",
                "--format",
                "{{.Names}} {{.Label \"io.stackctl.invocation\"}}",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .lines()
    .filter(|l| l.ends_with(&format!(" {pid}")) || l.contains(&format!(" {pid}-")))
    .map(str::to_string)
    .collect();
    assert!(own.is_empty(), "left behind: {own:?}\n{seen}");
    assert!(
        bystander.running(),
        "the interrupted import removed another run's tool container {}:\n{seen}",
        bystander.name
    );
}

/// A one-off import tool container of the stack's project that another stackctl started: the
/// labels `stackctl import-supabase` gives its own, with another invocation id. Removed on drop.
struct Bystander {
    name: String,
}

impl Bystander {
    fn start(stack: &crate::support::Stackctl) -> Self {
        let toml: toml::Table = std::fs::read_to_string(stack.file("stack.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let project = toml["project"]["name"].as_str().unwrap().to_string();
        let name = format!("{project}-import-dump-run-bystander{}", std::process::id());
        let out = Command::new("docker")
            .args(["run", "-d", "--name", &name, "--entrypoint", "sleep"])
            .args(["--label", &format!("com.docker.compose.project={project}")])
            .args(["--label", "com.docker.compose.service=import-dump"])
            .args(["--label", "com.docker.compose.oneoff=True"])
            .args(["--label", "io.stackctl.invocation=another-run"])
            .args([testkit::IMAGE, "600"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { name }
    }

    fn running(&self) -> bool {
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.State.Running}}", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "true"
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// A source using `vector` (a column, an HNSW index, a function taking a vector) and `http` (a
/// plpgsql function calling it, and a trigger running that function), beside what imports.
const KB_SQL: &str = "\
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS http WITH SCHEMA extensions;
CREATE TABLE app.kb_chunks (id bigserial PRIMARY KEY, body text NOT NULL, embedding extensions.vector(3));
CREATE INDEX kb_chunks_embedding_idx ON app.kb_chunks USING hnsw (embedding extensions.vector_cosine_ops);
INSERT INTO app.kb_chunks (body, embedding)
    SELECT 'chunk ' || g, format('[%s,1,0]', g)::extensions.vector FROM generate_series(1, 50) g;
CREATE FUNCTION app.kb_nearest(q extensions.vector) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT id FROM app.kb_chunks ORDER BY embedding OPERATOR(extensions.<=>) q LIMIT 1 $$;
CREATE FUNCTION app.kb_fetch_status(url text) RETURNS integer LANGUAGE plpgsql
    AS $$ BEGIN RETURN (extensions.http_get(url)).status; END $$;
CREATE FUNCTION app.kb_ping() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN PERFORM extensions.http_post('http://127.0.0.1:9/', '{}', 'application/json'); RETURN new; END $$;
CREATE TRIGGER kb_ping AFTER INSERT ON app.avatars FOR EACH ROW EXECUTE FUNCTION app.kb_ping();
";

/// Makes `extensions` unavailable in a server of our image (which ships them): their control
/// files go, as on a server that never had their packages.
fn remove_extensions(pg: &Postgres, extensions: &[&str]) {
    for ext in extensions {
        let out = Command::new("docker")
            .args(["exec", &pg.name, "rm"])
            .arg(format!("/usr/share/postgresql/17/extension/{ext}.control"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn objects_that_need_an_extension_the_target_lacks_are_named_and_left_out_on_request() {
    let p = Pair::new(KB_SQL);
    remove_extensions(&p.tgt, &["vector", "http"]);
    let app_on_target = || {
        p.tgt
            .db()
            .int("SELECT count(*) FROM pg_namespace WHERE nspname = 'app'")
    };
    let dependents = [
        "table app.kb_chunks (vector): column embedding: type extensions.vector",
        "index app.kb_chunks_embedding_idx (vector): uses operator class extensions.vector_cosine_ops",
        "function app.kb_nearest(extensions.vector) (vector): uses type extensions.vector",
        "function app.kb_fetch_status(text) (http): its body calls http_get()",
        "function app.kb_ping() (http): its body calls http_post()",
        "trigger kb_ping on app.avatars (http): depends on function app.kb_ping()",
    ];

    // The preflight (alone, and before a real run) names every dependent and refuses, before
    // anything is dumped or written (issue 16, point 4: it exited 0 naming only the extensions).
    let dry = p.import(&["--dry-run"]).failure();
    let (out, err) = (dry.stdout(), dry.stderr());
    assert!(
        out.contains("vector (extensions, missing on target; "),
        "{out}\n{err}"
    );
    for d in dependents {
        assert!(
            out.contains(d) && err.contains(d),
            "{d:?} not named:\n{out}\n{err}"
        );
    }
    assert!(
        err.contains("objects depend on extensions the target lacks (http, vector)"),
        "{err}"
    );
    assert!(err.contains("--leave-out-missing-extensions"), "{err}");
    let refused = p.import(&["--json"]).failure();
    let v = json(&refused);
    assert_eq!(v["stage"], "preflight", "{v:#}");
    for d in dependents {
        assert!(
            v["error"].as_str().unwrap().contains(d),
            "{d:?} not in {v:#}"
        );
    }
    assert!(
        v["hint"]
            .as_str()
            .unwrap()
            .contains("--leave-out-missing-extensions")
    );
    assert_eq!(app_on_target(), 0);
    assert!(
        !p.state_files().iter().any(|f| f.contains(".dump")),
        "{:?}",
        p.state_files()
    );

    // With the flag: listed as not carried (text), the rest imports and verifies (JSON).
    let plan = p
        .import(&["--dry-run", "--leave-out-missing-extensions"])
        .success()
        .stdout();
    assert!(plan.contains("not carried:"), "{plan}");
    for name in [
        "table app.kb_chunks",
        "index app.kb_chunks_embedding_idx",
        "function app.kb_nearest(extensions.vector)",
        "function app.kb_fetch_status(text)",
        "trigger kb_ping on app.avatars",
    ] {
        assert!(
            plan.lines()
                .any(|l| l.trim_start().starts_with(name)
                    && l.contains("not available on the target")),
            "{name} not listed as not carried:\n{plan}"
        );
    }
    let done = p
        .import(&["--json", "--leave-out-missing-extensions"])
        .success();
    let v = json(&done);
    let ver = &v["verification"];
    assert_eq!(ver["ok"], true, "{v:#}");
    let nc = not_carried(ver);
    for want in [
        "table app.kb_chunks",
        "index app.kb_chunks_embedding_idx",
        "function app.kb_nearest(extensions.vector)",
        "function app.kb_fetch_status(text)",
        "function app.kb_ping()",
        "trigger kb_ping on app.avatars",
        "extension vector",
        "extension http",
    ] {
        assert!(nc.iter().any(|n| n == want), "{want:?} not in {nc:?}");
    }
    let tables = ver["tables"].as_array().unwrap();
    assert!(
        !tables.iter().any(|t| t["table"] == "app.kb_chunks"),
        "{tables:?}"
    );
    assert!(
        tables
            .iter()
            .any(|t| t["table"] == "app.todos" && t["target_rows"] == 6000)
    );
    let db = p.tgt.db();
    assert_eq!(
        db.int("SELECT count(*) FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relname LIKE 'kb_%'"),
        0
    );
    assert_eq!(
        db.int("SELECT count(*) FROM pg_proc WHERE proname LIKE 'kb_%'"),
        0
    );
    assert_eq!(db.int("SELECT count(*) FROM app.todos"), 6000);
    assert_eq!(db.int("SELECT count(*) FROM app.avatars"), 500);

    // A dump file: the dependents come from its table of contents' dependency records.
    let dump = p.stack.file("full.dump");
    let made = Command::new("docker")
        .args([
            "exec",
            &p.src.name,
            "pg_dump",
            "-U",
            &p.src.superuser,
            "-Fc",
            "-f",
            "/tmp/full.dump",
            "app",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let copied = Command::new("docker")
        .args(["cp", &format!("{}:/tmp/full.dump", p.src.name)])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let from_dump = p
        .stack
        .cmd([
            "import-supabase",
            "--dump",
            dump.to_str().unwrap(),
            "--database-url",
            &p.tgt.url(),
            "--dry-run",
        ])
        .run()
        .failure();
    let err = from_dump.stderr();
    for name in [
        "table app.kb_chunks (vector)",
        "index app.kb_chunks_embedding_idx (vector)",
        "function app.kb_nearest(extensions.vector) (vector)",
    ] {
        assert!(err.contains(name), "{name} not named:\n{err}");
    }
}
