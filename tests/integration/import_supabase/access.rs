//! After an import, the API roles behave as on the source (issue 16, points 1–4): `service_role`
//! reads and upserts past row-level security, `anon` is refused the function it was refused,
//! the roles' settings match, pgvector's column, index and function work; and a difference in
//! privileges made on purpose after the restore fails the verification, naming object and role.

use super::{Pair, json, not_carried};
use crate::support::Db;

/// Runs `sql` as `role` (with `SET LOCAL ROLE`, in a transaction rolled back after) and returns
/// the first column of every row, or the error's message.
fn as_role(db: &Db, role: &str, sql: &str) -> Result<Vec<String>, String> {
    db.batch(&format!("BEGIN; SET LOCAL ROLE {role}")).unwrap();
    let out = db
        .query(sql)
        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
        .map_err(|e| {
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string())
        });
    db.batch("ROLLBACK").unwrap();
    out
}

#[test]
fn the_api_roles_read_write_and_are_refused_as_on_the_source() {
    let p = Pair::new("");
    let done = p.import(&["--json"]).success();
    let v = json(&done);
    let ver = &v["verification"];
    assert_eq!(ver["ok"], true, "{v:#}");
    let access = ver["access"].as_array().expect("access compared");
    let row = |what: &str| {
        access
            .iter()
            .find(|c| c["what"] == what)
            .unwrap_or_else(|| panic!("{what} not compared: {access:#?}"))
            .clone()
    };
    assert_eq!(row("role service_role")["target"], "NOINHERIT BYPASSRLS");
    assert_eq!(row("role authenticator")["ok"], true);
    assert_eq!(
        row("membership of authenticator in anon")["target"],
        "member"
    );
    assert_eq!(row("settings of anon")["target"], "statement_timeout=3s");
    assert_eq!(
        row("settings of authenticated")["target"],
        "statement_timeout=8s"
    );
    assert_eq!(
        row("function app.todo_count_of(uid uuid) to PUBLIC")["target"],
        ""
    );
    assert_eq!(
        row("function app.todo_count_of(uid uuid) to authenticated")["target"],
        "EXECUTE"
    );
    // authenticator cannot log in on the target (no password is imported): listed, not hidden.
    let nc = not_carried(ver);
    assert!(
        nc.iter()
            .any(|n| n == "role attribute LOGIN of authenticator"),
        "{nc:?}"
    );

    // The source's superuser (supabase_admin): `postgres` may not SET ROLE to the API roles.
    let src = p.src.db();
    let tgt = p.tgt.db();
    let both = |role: &str, sql: &str| {
        let s = as_role(&src, role, sql);
        let t = as_role(&tgt, role, sql);
        assert_eq!(s, t, "{role}: {sql}");
        t
    };

    // service_role reads every row of a table RLS closes to everyone else, and upserts into it.
    assert_eq!(
        both(
            "service_role",
            "SELECT count(*)::text FROM app.audit_events"
        ),
        Ok(vec!["300".to_string()])
    );
    assert_eq!(
        both(
            "service_role",
            "INSERT INTO app.audit_events (kind, payload) VALUES ('event 1', '{\"again\": true}') \
             ON CONFLICT (kind) DO UPDATE SET payload = excluded.payload RETURNING kind"
        ),
        Ok(vec!["event 1".to_string()])
    );
    assert_eq!(
        both(
            "authenticated",
            "SELECT count(*)::text FROM app.audit_events"
        ),
        Ok(vec!["0".to_string()])
    );

    // The SECURITY DEFINER function: granted to authenticated only; PUBLIC's EXECUTE stays revoked.
    let call = "SELECT app.todo_count_of(md5('user1')::uuid)::text";
    assert_eq!(both("authenticated", call), Ok(vec!["3".to_string()]));
    let refused = both("anon", call).unwrap_err();
    assert!(
        refused.contains("permission denied for function todo_count_of"),
        "{refused}"
    );
    assert_eq!(
        tgt.strings(
            "SELECT has_function_privilege('public', 'app.todo_count_of(uuid)', 'EXECUTE')::text"
        ),
        ["false"]
    );
    // ALTER DEFAULT PRIVILEGES came along: a function db_migrator makes later is not PUBLIC's.
    tgt.batch(
        "SET ROLE db_migrator; CREATE FUNCTION app.later() RETURNS int LANGUAGE sql AS 'SELECT 1'; RESET ROLE",
    )
    .unwrap();
    assert_eq!(
        tgt.strings("SELECT has_function_privilege('public', 'app.later()', 'EXECUTE')::text"),
        ["false"]
    );

    // The API roles' settings.
    let settings = "SELECT rolname || ' ' || array_to_string(rolconfig, ',') FROM pg_roles \
                    WHERE rolname IN ('anon', 'authenticated', 'authenticator') ORDER BY 1";
    assert_eq!(src.strings(settings), tgt.strings(settings));
    assert_eq!(
        tgt.strings(settings),
        [
            "anon statement_timeout=3s",
            "authenticated statement_timeout=8s",
            "authenticator statement_timeout=8s"
        ]
    );

    // pgvector: the column, the HNSW index (used when a scan is ruled out) and the function.
    let nearest =
        "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.match_documents('[3,3,1]', 3)";
    let ids = both("authenticated", nearest).unwrap();
    assert_eq!(ids[0].split(',').count(), 3, "{ids:?}");
    assert!(ids[0].split(',').any(|i| i == "3"), "{ids:?}");
    assert_eq!(
        tgt.strings(
            "SELECT am.amname::text FROM pg_class c JOIN pg_am am ON am.oid = c.relam \
             WHERE c.relname = 'documents_embedding_idx'"
        ),
        ["hnsw"]
    );
    tgt.batch("SET enable_seqscan = off").unwrap();
    let plan = tgt.strings(
        "EXPLAIN SELECT id FROM app.documents ORDER BY embedding OPERATOR(extensions.<=>) '[3,3,1]' LIMIT 3",
    );
    assert!(
        plan.iter().any(|l| l.contains("documents_embedding_idx")),
        "{plan:?}"
    );
    // http: its function is there and calls into the extension (a refused connection is
    // http's own error, not a missing function).
    let err = as_role(
        &tgt,
        "postgres",
        "SELECT app.fetch_status('http://127.0.0.1:9/')::text",
    )
    .unwrap_err();
    assert!(!err.contains("does not exist"), "{err}");
}

#[test]
fn a_privilege_changed_after_the_restore_fails_verification_naming_object_and_role() {
    let p = Pair::new("");
    // On the target, something grants anon the function during the import, after the restore:
    // an event trigger that fires when the role bootstrap (which runs after the restore and
    // the grants) alters default privileges.
    p.tgt
        .db()
        .batch(
            "CREATE SCHEMA meddling; \
             CREATE FUNCTION meddling.meddle() RETURNS event_trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF to_regprocedure('app.todo_count_of(uuid)') IS NOT NULL THEN \
                 GRANT EXECUTE ON FUNCTION app.todo_count_of(uuid) TO anon; \
               END IF; \
             END $$; \
             CREATE EVENT TRIGGER meddle ON ddl_command_end \
               WHEN TAG IN ('ALTER DEFAULT PRIVILEGES') EXECUTE FUNCTION meddling.meddle();",
        )
        .unwrap();
    let failed = p.import(&[]).failure();
    let out = failed.stdout();
    assert!(
        out.contains(
            "function app.todo_count_of(uid uuid) to anon: source (nothing), target EXECUTE  DIFFERS"
        ),
        "{out}"
    );
    assert!(
        failed.stderr().contains("verification found differences"),
        "{}",
        failed.stderr()
    );
}
