//! Tenants and tokens through their whole life, and the logins around them: the service login
//! reads no tenant data, the pooler's auth_query answers for tenant logins only.

use crate::support::{Harness, code};
use axum::http::StatusCode;
use postgate::admin;
use serde_json::json;

#[tokio::test]
async fn tenant_and_token_lifecycle() {
    let h = Harness::new(true).await;
    h.tenant("acme").await;
    // A second create is a no-op that says so; bad names never reach SQL.
    assert_eq!(
        admin::create_tenant(&h.admin().await, "acme")
            .await
            .unwrap(),
        admin::TenantCreated::AlreadyExisted
    );
    assert!(
        admin::create_tenant(&h.admin().await, "Bad-Name")
            .await
            .is_err()
    );

    let ddl = h.token("acme", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    let rw = h.token("acme", "SELECT,INSERT").await;
    let ro = h.token("acme", "SELECT").await;
    assert!(ddl.starts_with("pg_") && ddl.len() >= 46);

    h.ok(
        &ddl,
        "CREATE TABLE notes (id serial PRIMARY KEY, body text)",
    )
    .await;
    let (s, v) = h
        .query(
            &rw,
            "INSERT INTO notes (body) VALUES ($1) RETURNING id",
            json!(["hi"]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rows"], json!([[1]]));
    let v = h.ok(&ro, "SELECT id, body FROM notes").await;
    assert_eq!(v["rows"], json!([[1, "hi"]]));
    assert_eq!(
        v["columns"],
        json!([{"name": "id", "type": "int4"}, {"name": "body", "type": "text"}])
    );

    // The read-only token may not write; the read-write token may not delete or run DDL.
    let (s, v) = h
        .query(&ro, "INSERT INTO notes (body) VALUES ('x')", json!([]))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "denied"), "{v}");
    let (s, v) = h.query(&rw, "DELETE FROM notes", json!([])).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = h.query(&rw, "DROP TABLE notes", json!([])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Objects, duplicate names kept in arrays.
    let (s, v) = h
        .post(
            "/query",
            &ro,
            &json!({"sql": "SELECT 1 AS a, 2 AS a, 'x' AS b", "rows_as": "objects"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["rows"], json!([{"a": 1, "b": "x"}]));
    assert_eq!(v["columns"].as_array().unwrap().len(), 3);

    // list shows prefixes, never secrets; last use is stamped.
    let rows = admin::list_tokens(&h.admin().await, Some("acme"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r.prefix.len() == 11 && !ddl.eq(&r.prefix))
    );
    // last_used_at is written in batches by the background task (every 5 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(12);
    loop {
        let rows = admin::list_tokens(&h.admin().await, Some("acme"))
            .await
            .unwrap();
        if rows.iter().filter(|r| r.last_used.is_some()).count() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last_used_at never written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let stored: Vec<Vec<u8>> = h
        .admin()
        .await
        .query("SELECT hash FROM postgate.tokens", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(stored.iter().all(|hash| {
        hash.len() == 32
            && !hash
                .windows(8)
                .any(|w| ro.as_bytes().windows(8).any(|x| x == w))
    }));

    // Revocation: the next request is refused.
    let ro_row = rows.iter().find(|r| ro.starts_with(&r.prefix)).unwrap();
    admin::revoke_token(&h.admin().await, &ro_row.id.to_string())
        .await
        .unwrap();
    // Revocation reaches the cache through LISTEN/NOTIFY: within a second, not necessarily at
    // once (the timing itself is `revocation_reaches_every_replica_within_a_second`).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (s, v) = loop {
        let (s, v) = h.query(&ro, "SELECT 1", json!([])).await;
        if s == StatusCode::UNAUTHORIZED || std::time::Instant::now() > deadline {
            break (s, v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert!(
        admin::revoke_token(&h.admin().await, &ro_row.id.to_string())
            .await
            .is_err()
    );

    // Expiry, unknown and malformed tokens.
    let expired = h.token_expiring("acme", "SELECT", Some(0)).await;
    assert_eq!(
        h.query(&expired, "SELECT 1", json!([])).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.query("pg_nope", "SELECT 1", json!([])).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.query("", "SELECT 1", json!([])).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Tenants cannot see each other.
    h.tenant("other").await;
    let other = h.token("other", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    let (s, _) = h.query(&other, "SELECT * FROM acme.notes", json!([])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = h.query(&other, "SELECT * FROM notes", json!([])).await;
    assert_ne!(s, StatusCode::OK);
}

#[tokio::test]
async fn service_login_reads_no_tenant_data_and_creates_no_roles() {
    let h = Harness::new(true).await;
    h.tenant("acme").await;
    let ddl = h.token("acme", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    h.ok(&ddl, "CREATE TABLE secret AS SELECT 'x' AS v").await;
    let svc = h.service_login().await;
    for sql in [
        "SELECT * FROM acme.secret",
        "SET ROLE pgt_acme_owner",
        "SET ROLE pgt_acme_s",
        "CREATE ROLE evil",
        "SELECT postgate.create_tenant('evil')",
        "SELECT postgate.ensure_login('acme', 's', 'SCRAM-SHA-256$x')",
        "UPDATE postgate.tokens SET revoked_at = NULL",
        "INSERT INTO postgate.tenants VALUES ('evil')",
    ] {
        assert!(
            svc.batch_execute(sql).await.is_err(),
            "the service login could: {sql}"
        );
    }
    // The admin login cannot create roles either, except through the definer functions.
    let adm = h.admin().await;
    assert!(adm.batch_execute("CREATE ROLE evil").await.is_err());
    assert!(
        adm.batch_execute("SELECT * FROM acme.secret")
            .await
            .is_err()
    );
}

/// PgBouncer's auth_user learns the verifiers of postgate's tenant logins and of no other role:
/// the superuser and the platform logins are not reachable through the pooler's auth_query.
#[tokio::test]
async fn pooler_auth_answers_for_tenant_logins_only() {
    let h = Harness::new(true).await;
    h.tenant("acme").await;
    let _token = h.token("acme", "SELECT").await;
    let auth = h.pg.pooler_auth().await;
    let found = |user: &'static str| {
        let auth = &auth;
        async move {
            auth.query(
                "SELECT username, password FROM pooler.auth_lookup($1)",
                &[&user],
            )
            .await
            .expect("auth_lookup")
            .len()
        }
    };
    assert_eq!(found("pgt_acme_s_login").await, 1);
    for other in [
        "postgres",
        "postgate",
        "pooler_auth",
        "postgate_cli",
        "pgt_acme_s",
        "pgt_acme_owner",
    ] {
        assert_eq!(found(other).await, 0, "auth_lookup answered for {other}");
    }
    for sql in [
        "SELECT rolpassword FROM pg_authid",
        "SELECT * FROM postgate.tokens",
        "SET ROLE pgt_acme_s_login",
        "CREATE ROLE evil",
    ] {
        assert!(
            auth.batch_execute(sql).await.is_err(),
            "pooler_auth could: {sql}"
        );
    }
    // The superuser cannot come in through the pooler at all.
    let su =
        h.pg.try_pooler("postgres", crate::support::SUPER_PASSWORD)
            .await;
    assert!(su.is_err(), "the superuser got through the pooler");
}
