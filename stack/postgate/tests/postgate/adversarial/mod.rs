//! The adversarial suite: statements that try to escape a token's tenant or permissions. Each one
//! must be denied (`Deny`: any non-200 answer) or, where PostgreSQL lets it run, be harmless
//! (`Safe`: checked by the invariants after the suite). No answer may carry another tenant's data
//! or an internal secret. It runs twice: with the pg_query check, and without it, which proves
//! that PostgreSQL alone is the wall.
//!
//! The statements are in `cases`; this module runs them and checks the invariants.

mod cases;

use crate::support::Harness;
use axum::http::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;

use cases::CASES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Deny,
    Safe,
}
use Expect::Deny;

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
