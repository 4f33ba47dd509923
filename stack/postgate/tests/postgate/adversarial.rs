//! The adversarial suite: statements that try to escape a token's tenant or permissions. Each one
//! must be denied (`Deny`: any non-200 answer) or, where PostgreSQL lets it run, be harmless
//! (`Safe`: checked by the invariants after the suite). No answer may carry another tenant's data
//! or an internal secret. It runs twice: with the pg_query check, and without it, which proves
//! that PostgreSQL alone is the wall.

use crate::support::Harness;
use axum::http::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Deny,
    Safe,
}
use Expect::{Deny, Safe};

/// (token, statement, expectation). Tokens: `ro` SELECT, `rw` SELECT,INSERT,UPDATE,DELETE,
/// `ins` INSERT only, `ddl` everything + DDL; all on tenant `alpha`. Tenant `beta` holds the secret.
const CASES: &[(&str, &str, Expect)] = &[
    // --- another tenant's data, directly and through catalogs and search_path tricks
    ("ro", "SELECT * FROM beta.secret", Deny),
    ("rw", "SELECT * FROM beta.secret", Deny),
    ("ddl", "SELECT * FROM beta.secret", Deny),
    ("ro", "TABLE beta.secret", Deny),
    ("ro", "SELECT * FROM \"beta\".\"secret\"", Deny),
    ("ro", "SELECT * FROM U&\"\\0062eta\".secret", Deny),
    ("ro", "SELECT * FROM BETA.SECRET", Deny),
    ("ro", "SELECT (SELECT v FROM beta.secret)", Deny),
    (
        "ro",
        "WITH x AS (SELECT * FROM beta.secret) SELECT * FROM x",
        Deny,
    ),
    (
        "ro",
        "SELECT * FROM alpha.items UNION ALL SELECT 0, v FROM beta.secret",
        Deny,
    ),
    (
        "ro",
        "SELECT query_to_xml('select * from beta.secret', true, false, '')",
        Deny,
    ),
    (
        "ro",
        "SELECT xpath('/', query_to_xml('select v from beta.secret', true, false, ''))",
        Deny,
    ),
    (
        "ro",
        "SELECT table_to_xml('beta.secret', true, false, '')",
        Deny,
    ),
    ("ro", "SELECT schema_to_xml('beta', true, false, '')", Deny),
    ("ro", "SELECT * FROM secret", Deny),
    ("ro", "SET search_path = beta", Safe),
    (
        "ro",
        "SELECT set_config('search_path', 'beta', true), (SELECT count(*) FROM pg_class)",
        Safe,
    ),
    (
        "ro",
        "SELECT relname FROM pg_catalog.pg_class WHERE relname = 'secret'",
        Safe,
    ),
    (
        "ro",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'beta'",
        Safe,
    ),
    (
        "ro",
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'beta'",
        Safe,
    ),
    (
        "ro",
        "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'secret'",
        Safe,
    ),
    ("ro", "SELECT * FROM pg_statistic", Deny),
    ("ro", "SELECT query FROM pg_stat_activity", Safe),
    ("ro", "SELECT * FROM pg_largeobject", Deny),
    ("ro", "SELECT * FROM postgate.tokens", Deny),
    ("rw", "SELECT hash FROM postgate.tokens", Deny),
    ("ro", "SELECT * FROM postgate.tenants", Deny),
    (
        "ddl",
        "CREATE VIEW alpha.v AS SELECT * FROM beta.secret",
        Deny,
    ),
    // --- role and session changes
    ("ro", "SET ROLE pgt_beta_s", Deny),
    ("ro", "SET ROLE postgres", Deny),
    ("ro", "SET ROLE pgt_alpha_siud", Deny),
    ("ro", "SET ROLE pgt_alpha_owner", Deny),
    ("ro", "SET ROLE \"postgres\"", Deny),
    ("ro", "SET ROLE 'pgt_beta_owner'", Deny),
    ("ro", "sEt RoLe postgres", Deny),
    ("ro", "SET LOCAL ROLE pgt_beta_s", Deny),
    ("ro", "SET SESSION ROLE pgt_beta_s", Deny),
    ("ro", "SET ROLE postgate", Deny),
    // A read-only token's statement is the last of its transaction (one sync point, no check
    // after it): back to its own login, which reads nothing, in a read-only transaction; the
    // next request sets its role again (checked after every case).
    ("ro", "RESET ROLE", Safe),
    ("ro", "SET ROLE NONE", Safe),
    ("rw", "RESET ROLE", Deny),
    // Session settings only; SET LOCAL ROLE and READ ONLY survive it.
    ("ro", "RESET ALL", Safe),
    ("ro", "SET SESSION AUTHORIZATION postgres", Deny),
    ("ro", "SET SESSION AUTHORIZATION pgt_beta_s_login", Deny),
    // The login it is already (the same as RESET ROLE).
    ("ro", "SET SESSION AUTHORIZATION DEFAULT", Safe),
    ("ro", "RESET SESSION AUTHORIZATION", Safe),
    ("ro", "SELECT set_config('role', 'pgt_beta_s', true)", Deny),
    ("ro", "SELECT set_config('role', 'postgres', false)", Deny),
    (
        "ro",
        "SELECT set_config('role', 'pgt_alpha_siud', true)",
        Deny,
    ),
    ("ro", "SELECT set_config('role', 'none', true)", Safe),
    (
        "ro",
        "SELECT set_config('session_authorization', 'postgres', true)",
        Deny,
    ),
    (
        "ins",
        "SELECT set_config('role', 'pgt_alpha_s', true), query_to_xml('select * from alpha.private', true, false, '')",
        Deny,
    ),
    (
        "ro",
        "SELECT set_config('role', 'pgt_beta_s', true), query_to_xml('select * from beta.secret', true, false, '')",
        Deny,
    ),
    ("rw", "DO $$BEGIN SET ROLE pgt_beta_s; END$$", Deny),
    ("rw", "DO $$BEGIN RESET ROLE; END$$", Deny),
    (
        "rw",
        "DO $$BEGIN PERFORM set_config('role', 'pgt_beta_owner', true); END$$",
        Deny,
    ),
    (
        "ddl",
        "DO $$BEGIN EXECUTE 'SET ROLE pgt_beta_owner'; END$$",
        Deny,
    ),
    (
        "ddl",
        "DO $$BEGIN RESET ROLE; EXECUTE 'ALTER ROLE pgt_alpha_owner_login PASSWORD ''x'''; END$$",
        Deny,
    ),
    ("ddl", "ALTER ROLE pgt_alpha_owner_login PASSWORD 'x'", Deny),
    // Its own login's password, with the role set back so that the role check alone passes.
    (
        "rw",
        "DO $$DECLARE r text := current_user; BEGIN RESET ROLE; \
         EXECUTE format('ALTER ROLE %I PASSWORD %L', session_user, 'x'); \
         EXECUTE format('SET ROLE %I', r); END$$",
        Deny,
    ),
    (
        "ddl",
        "DO $$DECLARE r text := current_user; BEGIN BEGIN RESET ROLE; \
         EXECUTE format('ALTER ROLE %I PASSWORD %L', session_user, 'x'); \
         EXECUTE format('SET ROLE %I', r); END; END$$",
        Deny,
    ),
    (
        "ddl",
        "DO $$DECLARE r text := current_user; BEGIN RESET ROLE; \
         BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', session_user, 'x'); \
         EXCEPTION WHEN others THEN NULL; END; EXECUTE format('SET ROLE %I', r); END$$",
        Deny,
    ),
    ("ddl", "ALTER ROLE CURRENT_USER LOGIN", Deny),
    ("ddl", "ALTER ROLE CURRENT_USER SUPERUSER", Deny),
    ("ddl", "ALTER ROLE CURRENT_USER PASSWORD 'x'", Safe),
    ("ddl", "CREATE ROLE evil LOGIN PASSWORD 'x'", Deny),
    ("ddl", "GRANT pgt_beta_s TO pgt_alpha_owner", Deny),
    ("ddl", "GRANT pgt_alpha_owner TO pgt_alpha_s_login", Deny),
    ("ddl", "DROP ROLE pgt_beta_s", Deny),
    (
        "ddl",
        "REASSIGN OWNED BY pgt_beta_owner TO pgt_alpha_owner",
        Deny,
    ),
    ("ddl", "DROP OWNED BY pgt_beta_owner", Deny),
    (
        "ddl",
        "ALTER TABLE alpha.items OWNER TO pgt_beta_owner",
        Deny,
    ),
    (
        "ddl",
        "ALTER DEFAULT PRIVILEGES FOR ROLE pgt_beta_owner GRANT SELECT ON TABLES TO pgt_alpha_s",
        Deny,
    ),
    ("rw", "SELECT postgate.create_tenant('evil')", Deny),
    (
        "rw",
        "SELECT postgate.ensure_login('beta', 's', 'SCRAM-SHA-256$4096:x')",
        Deny,
    ),
    // --- transaction control
    ("rw", "COMMIT", Deny),
    ("rw", "ROLLBACK", Deny),
    // In a read's implicit transaction: ends it early, nothing runs after it.
    ("ro", "END", Safe),
    ("ro", "ABORT", Safe),
    ("rw", "BEGIN", Safe),
    // A read-only token's statement runs in one implicit transaction up to a single Sync: one
    // that opens a transaction block there is rolled back (`session_changed`); one that ends the
    // transaction (COMMIT) only ends a read-only transaction early.
    ("ro", "BEGIN", Deny),
    ("ro", "COMMIT", Safe),
    ("ro", "START TRANSACTION READ WRITE", Deny),
    ("rw", "START TRANSACTION", Safe),
    ("rw", "SAVEPOINT a", Safe),
    ("rw", "RELEASE SAVEPOINT a", Deny),
    ("rw", "ROLLBACK TO SAVEPOINT a", Deny),
    ("rw", "PREPARE TRANSACTION 'x'", Deny),
    ("rw", "COMMIT PREPARED 'x'", Deny),
    ("ro", "SET TRANSACTION READ WRITE", Deny),
    ("ro", "SET transaction_read_only = off", Deny),
    (
        "ro",
        "SELECT set_config('transaction_read_only', 'off', true)",
        Deny,
    ),
    (
        "ro",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        Safe,
    ),
    // --- writes under a read-only token, and rights a token lacks
    ("ro", "INSERT INTO alpha.items VALUES (9, 'x')", Deny),
    ("ro", "UPDATE alpha.items SET v = 'x'", Deny),
    ("ro", "DELETE FROM alpha.items", Deny),
    (
        "ro",
        "WITH d AS (DELETE FROM alpha.items RETURNING *) SELECT * FROM d",
        Deny,
    ),
    (
        "ro",
        "WITH i AS (INSERT INTO alpha.items VALUES (9, 'x') RETURNING *) SELECT 1",
        Deny,
    ),
    (
        "ro",
        "WITH u AS (UPDATE alpha.items SET v = 'x' RETURNING 1) SELECT count(*) FROM u",
        Deny,
    ),
    ("ro", "SELECT * FROM alpha.items FOR UPDATE", Deny),
    ("ro", "SELECT * FROM alpha.items FOR NO KEY UPDATE", Deny),
    ("ro", "SELECT * FROM alpha.items FOR SHARE", Deny),
    ("ro", "SELECT * FROM alpha.items FOR KEY SHARE", Deny),
    ("ro", "SELECT * INTO alpha.copy FROM alpha.items", Deny),
    ("ro", "CREATE TEMP TABLE t AS SELECT 1", Deny),
    (
        "ro",
        "MERGE INTO alpha.items t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE",
        Deny,
    ),
    (
        "ro",
        "LOCK TABLE alpha.items IN ACCESS EXCLUSIVE MODE",
        Deny,
    ),
    ("ro", "TRUNCATE alpha.items", Deny),
    ("rw", "TRUNCATE alpha.items", Deny),
    ("ro", "SELECT nextval('alpha.counter')", Deny),
    ("rw", "SELECT setval('alpha.counter', 100)", Deny),
    // PostgreSQL allows NOTIFY in a read-only transaction; a spurious wake-up is harmless.
    ("ro", "NOTIFY postgate_tokens, 'x'", Safe),
    ("ro", "SELECT pg_notify('postgate_tokens', 'x')", Deny),
    ("rw", "CREATE TABLE alpha.t2 (i int)", Deny),
    ("rw", "DROP TABLE alpha.items", Deny),
    ("rw", "ALTER TABLE alpha.items ADD COLUMN z int", Deny),
    ("ins", "SELECT * FROM alpha.private", Deny),
    (
        "ins",
        "INSERT INTO alpha.private SELECT * FROM alpha.private",
        Deny,
    ),
    (
        "ins",
        "INSERT INTO alpha.items VALUES (50, 'x') RETURNING *",
        Deny,
    ),
    ("ins", "UPDATE alpha.items SET v = 'x'", Deny),
    ("ins", "DELETE FROM alpha.items", Deny),
    // --- another tenant's objects and shared schemas
    ("rw", "INSERT INTO beta.secret VALUES ('x')", Deny),
    ("rw", "UPDATE beta.secret SET v = 'pwned'", Deny),
    ("rw", "DELETE FROM beta.secret", Deny),
    ("rw", "UPDATE postgate.tokens SET revoked_at = now()", Deny),
    ("rw", "DELETE FROM postgate.tenants", Deny),
    ("ddl", "CREATE TABLE beta.x (i int)", Deny),
    ("ddl", "DROP TABLE beta.secret", Deny),
    ("ddl", "ALTER TABLE beta.secret ADD COLUMN x int", Deny),
    ("ddl", "TRUNCATE beta.secret", Deny),
    ("ddl", "CREATE INDEX ON beta.secret (v)", Deny),
    (
        "ddl",
        "CREATE TRIGGER t BEFORE INSERT ON beta.secret FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
        Deny,
    ),
    ("ddl", "COMMENT ON TABLE beta.secret IS 'x'", Deny),
    ("ddl", "REINDEX TABLE beta.secret", Deny),
    ("ddl", "LOCK TABLE beta.secret", Deny),
    ("ddl", "CREATE TABLE public.x (i int)", Deny),
    ("ddl", "CREATE TABLE postgate.x (i int)", Deny),
    ("ddl", "CREATE SCHEMA evil", Deny),
    ("ddl", "DROP SCHEMA beta CASCADE", Deny),
    ("ddl", "ALTER SCHEMA beta OWNER TO pgt_alpha_owner", Deny),
    ("ddl", "ALTER SCHEMA alpha RENAME TO beta2", Deny),
    ("ddl", "CREATE DATABASE evil", Deny),
    ("ddl", "DROP DATABASE postgres", Deny),
    ("ddl", "VACUUM beta.secret", Safe),
    ("ddl", "ANALYZE beta.secret", Safe),
    ("ddl", "CHECKPOINT", Deny),
    (
        "ddl",
        "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION pg_catalog.now()",
        Deny,
    ),
    ("ddl", "CREATE PUBLICATION p FOR ALL TABLES", Deny),
    ("ddl", "CREATE EXTENSION dblink", Deny),
    ("ddl", "CREATE EXTENSION pg_cron", Deny),
    (
        "ddl",
        "CREATE FUNCTION alpha.f() RETURNS int LANGUAGE c AS '/lib/x86_64-linux-gnu/libc.so.6', 'getpid'",
        Deny,
    ),
    (
        "ddl",
        "CREATE FUNCTION alpha.g() RETURNS setof text LANGUAGE sql SECURITY DEFINER AS 'SELECT v FROM beta.secret'",
        Deny,
    ),
    ("ddl", "ALTER SYSTEM SET work_mem = '1GB'", Deny),
    ("ddl", "LOAD 'auto_explain'", Deny),
    // --- files, programs, large objects, settings, other sessions
    ("ddl", "COPY alpha.items TO PROGRAM 'id'", Deny),
    ("ddl", "COPY alpha.items FROM PROGRAM 'id'", Deny),
    ("ddl", "COPY alpha.items FROM '/etc/passwd'", Deny),
    ("ddl", "COPY (SELECT 1) TO '/tmp/x'", Deny),
    ("ro", "COPY beta.secret TO STDOUT", Deny),
    ("ro", "SELECT pg_read_file('/etc/passwd')", Deny),
    ("ro", "SELECT pg_read_file('pg_hba.conf')", Deny),
    ("ro", "SELECT pg_read_binary_file('/etc/passwd')", Deny),
    ("ro", "SELECT pg_ls_dir('.')", Deny),
    ("ro", "SELECT pg_stat_file('postgresql.conf')", Deny),
    ("ro", "SELECT lo_import('/etc/passwd')", Deny),
    ("ro", "SELECT lo_export(1, '/tmp/x')", Deny),
    ("ro", "SELECT lo_get(1)", Deny),
    ("ro", "SELECT pg_reload_conf()", Deny),
    ("ro", "SELECT pg_rotate_logfile()", Deny),
    ("ro", "SELECT current_setting('data_directory')", Deny),
    ("ro", "SHOW data_directory", Deny),
    ("ro", "SHOW hba_file", Deny),
    ("ro", "SELECT * FROM pg_authid", Deny),
    ("ro", "SELECT passwd FROM pg_shadow", Deny),
    ("ro", "SELECT * FROM pg_hba_file_rules", Deny),
    ("ro", "SELECT * FROM pg_file_settings", Deny),
    (
        "ro",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres'",
        Deny,
    ),
    (
        "ro",
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres'",
        Deny,
    ),
    ("rw", "SELECT pg_advisory_lock(42)", Safe),
    ("rw", "LISTEN postgate_tokens", Safe),
    // --- smuggling with comments, quotes and semicolons
    ("rw", "SELECT 1; DELETE FROM alpha.items", Deny),
    ("ro", "SELECT 1; SELECT * FROM beta.secret", Deny),
    ("ro", "SELECT 1 /* ; SET ROLE postgres */", Safe),
    ("ro", "SELECT ';SET ROLE postgres'", Safe),
    ("ro", "SELECT $$;$$; SET ROLE postgres", Deny),
    ("ro", "SELECT $t$ $$ ; SET ROLE postgres $t$", Safe),
    ("ro", "SELECT 1 --\n; SET ROLE postgres", Deny),
    ("ro", "/**/SET/**/ROLE/**/postgres", Deny),
    ("ro", "SELECT E'\\''; SET ROLE postgres; --'", Deny),
    ("ro", "SELECT 1 \\; SET ROLE postgres", Deny),
    ("rw", "/* x */ DELETE FROM beta.secret -- y", Deny),
    ("ro", "PREPARE p AS SELECT * FROM beta.secret", Deny),
    ("ro", "EXPLAIN ANALYZE DELETE FROM alpha.items", Deny),
    ("ro", "DECLARE c CURSOR FOR SELECT * FROM beta.secret", Deny),
    // --- resource exhaustion: bounded by the timeout and the limits
    ("ro", "SELECT pg_sleep(30)", Deny),
    ("ro", "SELECT pg_sleep_for('1 hour')", Deny),
    (
        "ro",
        "SELECT count(*) FROM generate_series(1, 10000000000)",
        Deny,
    ),
    (
        "ro",
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT i FROM r",
        Deny,
    ),
    ("ro", "SELECT generate_series(1, 1000000)", Deny),
    ("ro", "SELECT repeat('x', 300000)", Deny),
    ("ro", "SELECT repeat('x', 1100000000)", Deny),
    (
        "ro",
        "SELECT pg_sleep(0.4) FROM generate_series(1, 10)",
        Deny,
    ),
    (
        "ddl",
        "CREATE TABLE alpha.big AS SELECT generate_series(1, 1000000000::bigint) AS i",
        Deny,
    ),
];

struct Tokens {
    ro: String,
    rw: String,
    ins: String,
    ddl: String,
}

impl Tokens {
    fn get(&self, key: &str) -> &str {
        match key {
            "ro" => &self.ro,
            "rw" => &self.rw,
            "ins" => &self.ins,
            "ddl" => &self.ddl,
            other => panic!("no token {other}"),
        }
    }
}

async fn snapshot(h: &Harness) -> (BTreeSet<String>, Vec<String>, i64, i64) {
    let su = h.pg.superuser().await;
    let roles = su
        .query(
            "SELECT rolname || ':' || rolsuper || rolcreaterole || rolcanlogin || rolbypassrls \
                    || CASE WHEN rolname LIKE 'pgt\\_%\\_login' THEN ':' || coalesce(rolpassword, '') ELSE '' END \
               FROM pg_authid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let secret: Vec<String> = su
        .query("SELECT v FROM beta.secret ORDER BY v", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tokens: i64 = su
        .query_one(
            "SELECT count(*) FROM postgate.tokens WHERE revoked_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let shared: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname IN ('public', 'postgate', 'beta')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (roles, secret, tokens, shared)
}

/// The session state a request runs under: role, read-only mode, statement timeout, search_path.
const SESSION_STATE: &str = "SELECT current_user::text, current_setting('transaction_read_only'), \
     current_setting('statement_timeout'), current_setting('search_path')";

fn role_of(token: &str) -> &'static str {
    match token {
        "ro" => "pgt_alpha_s",
        "rw" => "pgt_alpha_siud",
        "ins" => "pgt_alpha_i",
        _ => "pgt_alpha_owner",
    }
}

fn read_only_of(token: &str) -> &'static str {
    if token == "ro" { "on" } else { "off" }
}

async fn run_suite(parser_check: bool) {
    assert!(
        CASES.len() >= 100,
        "the suite must hold at least 100 statements"
    );
    let h = Harness::new(parser_check).await;
    h.tenant("alpha").await;
    h.tenant("beta").await;
    let beta = h.token("beta", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    h.ok(&beta, "CREATE TABLE secret (v text)").await;
    h.ok(&beta, "INSERT INTO secret VALUES ('beta-secret')")
        .await;
    let t = Tokens {
        ro: h.token("alpha", "SELECT").await,
        rw: h.token("alpha", "SELECT,INSERT,UPDATE,DELETE").await,
        ins: h.token("alpha", "INSERT").await,
        ddl: h.token("alpha", "SELECT,INSERT,UPDATE,DELETE,DDL").await,
    };
    h.ok(&t.ddl, "CREATE TABLE items (id int PRIMARY KEY, v text)")
        .await;
    h.ok(&t.ddl, "INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        .await;
    h.ok(&t.ddl, "CREATE TABLE private (v text)").await;
    h.ok(&t.ddl, "INSERT INTO private VALUES ('alpha-private')")
        .await;
    h.ok(&t.ddl, "CREATE SEQUENCE counter").await;
    // Statistics with the secret exist; a superuser session's last query holds it too.
    let su = h.pg.superuser().await;
    su.batch_execute("ANALYZE beta.secret; SELECT 'beta-secret' AS marker")
        .await
        .unwrap();

    let before = snapshot(&h).await;
    let mut failures = Vec::new();
    for (i, (who, sql, expect)) in CASES.iter().enumerate() {
        let (status, body) = h.query(t.get(who), sql, json!([])).await;
        let text = body.to_string();
        let mut problems = Vec::new();
        if *expect == Deny && status == StatusCode::OK {
            problems.push("was allowed".to_string());
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || status.is_server_error() {
            problems.push(format!("server error {status}"));
        }
        for leak in [
            "beta-secret",
            "SCRAM-SHA-256$",
            "postgres://",
            "service-secret",
        ] {
            if text.contains(leak) {
                problems.push(format!("leaked {leak}"));
            }
        }
        if *who == "ins" && text.contains("alpha-private") {
            problems.push("INSERT-only token read data".into());
        }
        // Whatever the statement did to its server session, the token's next request runs as
        // postgate sets it up (a read's one-sync-point path has no check after the statement:
        // this is what makes a `Safe` session change there harmless).
        // (The parser refuses an INSERT-only token any SELECT.)
        if !(parser_check && *who == "ins") {
            let (_, state) = h.query(t.get(who), SESSION_STATE, json!([])).await;
            let expected = json!([[role_of(who), read_only_of(who), "1500ms", "\"alpha\""]]);
            if state["rows"] != expected {
                problems.push(format!("the next request saw the session as {state}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "#{i} [{who}] {sql:?} -> {status} {text}: {}",
                problems.join(", ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "parser_check={parser_check}: {} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );

    // Invariants: nothing outside alpha changed, no role gained anything, tokens and logins work.
    let after = snapshot(&h).await;
    assert_eq!(before.0, after.0, "roles or role attributes changed");
    assert_eq!(
        after.1,
        vec!["beta-secret".to_string()],
        "beta.secret changed"
    );
    assert_eq!(before.2, after.2, "tokens changed");
    assert_eq!(
        before.3, after.3,
        "objects appeared in public, postgate or beta"
    );
    let items = h.ok(&t.ro, "SELECT id, v FROM items ORDER BY id").await;
    assert_eq!(items["rows"], json!([[1, "a"], [2, "b"]]));
    for key in ["ro", "rw", "ddl"] {
        h.ok(t.get(key), "SELECT 1").await;
    }
    h.ok(&t.ins, "INSERT INTO items VALUES (3, 'c')").await;
    let idle: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(idle, 0, "a connection was left inside a transaction");
}

#[tokio::test]
async fn adversarial_with_parser_check() {
    run_suite(true).await;
}

#[tokio::test]
async fn adversarial_without_parser_check_database_alone_holds() {
    run_suite(false).await;
}
