use crate::support::{Harness, code, post_to, test_limits};
use axum::http::StatusCode;
use postgate::admin;
use serde_json::{Value, json};

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

#[tokio::test]
async fn types_round_trip() {
    let h = Harness::new(true).await;
    h.tenant("types").await;
    let ddl = h.token("types", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    h.ok(&ddl, "CREATE TYPE mood AS ENUM ('sad', 'happy')")
        .await;
    h.ok(&ddl, "CREATE TYPE pair AS (a int, b text)").await;
    h.ok(&ddl, "CREATE DOMAIN posint AS int CHECK (VALUE > 0)")
        .await;
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        ("SELECT $1::bool", json!(true), json!(true), "bool"),
        ("SELECT $1::int2", json!(-7), json!(-7), "int2"),
        (
            "SELECT $1::int4",
            json!(2147483647),
            json!(2147483647),
            "int4",
        ),
        (
            "SELECT $1::int8",
            json!("9223372036854775807"),
            json!("9223372036854775807"),
            "int8",
        ),
        ("SELECT $1::float4", json!(1.5), json!(1.5), "float4"),
        ("SELECT $1::float8", json!(0.1), json!(0.1), "float8"),
        (
            "SELECT 'NaN'::float8 WHERE $1::int IS NOT NULL",
            json!(1),
            json!("NaN"),
            "float8",
        ),
        (
            "SELECT $1::numeric",
            json!("123456789012345678901234567890.000000001"),
            json!("123456789012345678901234567890.000000001"),
            "numeric",
        ),
        (
            "SELECT $1::numeric",
            json!("-0.0050"),
            json!("-0.0050"),
            "numeric",
        ),
        ("SELECT $1::numeric", json!("NaN"), json!("NaN"), "numeric"),
        (
            "SELECT $1::text",
            json!("héllo \"q\" \\ ;"),
            json!("héllo \"q\" \\ ;"),
            "text",
        ),
        (
            "SELECT $1::varchar(5)",
            json!("abc"),
            json!("abc"),
            "varchar",
        ),
        ("SELECT $1::char(3)", json!("ab"), json!("ab "), "bpchar"),
        (
            "SELECT $1::json",
            json!({"b": [1, 2], "a": null}),
            json!({"b": [1, 2], "a": null}),
            "json",
        ),
        (
            "SELECT $1::jsonb",
            json!({"k": "v", "n": 1.25}),
            json!({"k": "v", "n": 1.25}),
            "jsonb",
        ),
        (
            "SELECT $1::uuid",
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            "uuid",
        ),
        (
            "SELECT $1::bytea",
            json!("\\xdeadbeef"),
            json!("\\xdeadbeef"),
            "bytea",
        ),
        (
            "SELECT $1::date",
            json!("2024-02-29"),
            json!("2024-02-29"),
            "date",
        ),
        (
            "SELECT $1::date",
            json!("infinity"),
            json!("infinity"),
            "date",
        ),
        (
            "SELECT $1::timestamp",
            json!("2024-02-29 13:14:15.123456"),
            json!("2024-02-29T13:14:15.123456"),
            "timestamp",
        ),
        (
            "SELECT $1::timestamptz",
            json!("2024-02-29T13:14:15+02:00"),
            json!("2024-02-29T11:14:15Z"),
            "timestamptz",
        ),
        (
            "SELECT $1::time",
            json!("23:59:59.5"),
            json!("23:59:59.500"),
            "time",
        ),
        (
            "SELECT $1::timetz",
            json!("10:00:00+02"),
            json!("10:00:00+02:00"),
            "timetz",
        ),
        (
            "SELECT $1::interval",
            json!("1 year 2 mons 3 days 04:05:06"),
            json!("P1Y2M3DT4H5M6S"),
            "interval",
        ),
        (
            "SELECT $1::inet",
            json!("192.168.0.1"),
            json!("192.168.0.1"),
            "inet",
        ),
        (
            "SELECT $1::cidr",
            json!("10.0.0.0/8"),
            json!("10.0.0.0/8"),
            "cidr",
        ),
        (
            "SELECT $1::int4[]",
            json!([1, null, 3]),
            json!([1, null, 3]),
            "int4[]",
        ),
        (
            "SELECT $1::text[]",
            json!(["a,b", "c\"d", null]),
            json!(["a,b", "c\"d", null]),
            "text[]",
        ),
        (
            "SELECT $1::int[]",
            json!([[1, 2], [3, 4]]),
            json!([[1, 2], [3, 4]]),
            "int4[]",
        ),
        ("SELECT $1::int[]", json!([]), json!([]), "int4[]"),
        ("SELECT $1::mood", json!("happy"), json!("happy"), "mood"),
        (
            "SELECT $1::mood[]",
            json!(["sad", "happy"]),
            json!(["sad", "happy"]),
            "mood[]",
        ),
        // Domains are reported as their base type by PostgreSQL.
        ("SELECT $1::posint", json!(5), json!(5), "int4"),
        (
            "SELECT ROW($1::int, 'x')::pair",
            json!(1),
            json!({"a": 1, "b": "x"}),
            "pair",
        ),
        (
            "SELECT ROW($1::int, 'x')",
            json!(1),
            json!([1, "x"]),
            "record",
        ),
        ("SELECT $1::text", json!(null), json!(null), "text"),
        ("SELECT $1::oid", json!(42), json!(42), "oid"),
    ];
    // A token that may write takes the general path (tokio-postgres); a read-only one the
    // one-sync-point path (`postgate::pipeline`) for built-in types: both must answer alike.
    let ro = h.token("types", "SELECT").await;
    for ((sql, param, want, ty), token) in cases
        .iter()
        .flat_map(|c| [(c.clone(), &ddl), (c.clone(), &ro)])
    {
        let (s, v) = h.query(token, sql, json!([param])).await;
        assert_eq!(s, StatusCode::OK, "{sql} {param}: {v}");
        // Times may print fraction digits differently; compare after trimming zeros.
        let got = &v["rows"][0][0];
        if ty == "time" {
            assert!(
                got.as_str().unwrap().starts_with("23:59:59.5"),
                "{sql}: {got}"
            );
        } else {
            assert_eq!(got, &want, "{sql} {param}");
        }
        assert_eq!(v["columns"][0]["type"], json!(ty), "{sql}");
    }
    // Round trip through a table, NULLs included.
    h.ok(
        &ddl,
        "CREATE TABLE t (n numeric, b bigint, j jsonb, ts timestamptz, u uuid, a text[])",
    )
    .await;
    let (s, v) = h
        .query(
            &ddl,
            "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6)",
            json!(["1.10", "-9007199254740993", {"x": [true]}, "2001-02-03T04:05:06.789Z", null, ["x"]]),
        )
        .await;
    assert_eq!(
        (s, v["row_count"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    let v = h.ok(&ddl, "SELECT * FROM t").await;
    assert_eq!(
        v["rows"][0],
        json!(["1.10", "-9007199254740993", {"x": [true]}, "2001-02-03T04:05:06.789Z", null, ["x"]])
    );
    // A type outside the table is refused clearly, not garbled.
    let (s, v) = h.query(&ddl, "SELECT point(1, 2)", json!([])).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_type"),
        "{v}"
    );
}

#[tokio::test]
async fn batch_is_atomic() {
    let h = Harness::new(true).await;
    h.tenant("b").await;
    let ddl = h.token("b", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    h.ok(&ddl, "CREATE TABLE k (id int PRIMARY KEY)").await;
    let (s, v) = h
        .post(
            "/batch",
            &ddl,
            &json!({"statements": [
                {"sql": "INSERT INTO k VALUES ($1)", "params": [1]},
                {"sql": "INSERT INTO k VALUES ($1)", "params": [2]},
                {"sql": "SELECT count(*) FROM k"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][2]["rows"], json!([["2"]]));
    // The third statement fails: the first two are rolled back.
    let (s, v) = h
        .post(
            "/batch",
            &ddl,
            &json!({"statements": [
                {"sql": "INSERT INTO k VALUES (3)"},
                {"sql": "INSERT INTO k VALUES (4)"},
                {"sql": "INSERT INTO k VALUES (1)"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["sqlstate"], json!("23505"));
    assert_eq!(v["error"]["statement"], json!(2));
    let v = h.ok(&ddl, "SELECT array_agg(id ORDER BY id) FROM k").await;
    assert_eq!(v["rows"], json!([[[1, 2]]]));
    // A denied statement anywhere refuses the whole batch before anything runs.
    let (s, v) = h
        .post(
            "/batch",
            &ddl,
            &json!({"statements": [
                {"sql": "INSERT INTO k VALUES (5)"},
                {"sql": "COMMIT"}
            ]}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "denied"));
    let v = h.ok(&ddl, "SELECT count(*) FROM k").await;
    assert_eq!(v["rows"], json!([["2"]]));
}

#[tokio::test]
async fn limits_and_errors() {
    let h = Harness::new(true).await;
    h.tenant("lim").await;
    let ddl = h.token("lim", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    let l = test_limits();
    // Body size.
    let big = format!("{{\"sql\": \"SELECT '{}'\"}}", "x".repeat(l.max_body_bytes));
    let (s, v) = h.post_raw("/query", &ddl, big).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    // Row count.
    let (s, v) = h
        .query(&ddl, "SELECT generate_series(1, 5000)", json!([]))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "row_limit")
    );
    // Response bytes.
    let (s, v) = h
        .query(
            &ddl,
            "SELECT repeat('x', 1000) FROM generate_series(1, 900)",
            json!([]),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "response_too_large")
    );
    // Statement timeout.
    let (s, v) = h.query(&ddl, "SELECT pg_sleep(10)", json!([])).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::REQUEST_TIMEOUT, "statement_timeout")
    );
    assert_eq!(v["error"]["sqlstate"], json!("57014"));
    // Batch size.
    let many: Vec<Value> = (0..=l.max_batch)
        .map(|_| json!({"sql": "SELECT 1"}))
        .collect();
    let (s, v) = h.post("/batch", &ddl, &json!({ "statements": many })).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_many_statements")
    );
    // A limit rolls the transaction back: the insert before it is gone.
    h.ok(&ddl, "CREATE TABLE w (i int)").await;
    let (s, _) = h
        .post(
            "/batch",
            &ddl,
            &json!({"statements": [
                {"sql": "INSERT INTO w VALUES (1)"},
                {"sql": "SELECT generate_series(1, 5000)"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        h.ok(&ddl, "SELECT count(*) FROM w").await["rows"],
        json!([["0"]])
    );
    // Errors: stable code, SQLSTATE, message, position; nothing internal.
    let (s, v) = h.query(&ddl, "SELECT nope FROM w", json!([])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], json!("sql_error"));
    assert_eq!(v["error"]["sqlstate"], json!("42703"));
    assert_eq!(v["error"]["position"], json!(8));
    let (s, v) = h.query(&ddl, "SELEC 1", json!([])).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "syntax_error"));
    let (s, v) = h.query(&ddl, "SELECT $1::int", json!([])).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "bad_request"),
        "{v}"
    );
    let (s, _) = h.post_raw("/query", &ddl, "{not json".into()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let text = v.to_string();
    assert!(!text.contains("postgres://") && !text.contains("pgt_") && !text.contains("127.0.0.1"));
}

#[tokio::test]
async fn rate_limit_per_token() {
    let limits = postgate::Limits {
        rate_per_token: 5,
        ..test_limits()
    };
    let h = Harness::with_limits(true, limits).await;
    h.tenant("rl").await;
    let a = h.token("rl", "SELECT").await;
    let b = h.token("rl", "SELECT").await;
    let mut limited = 0;
    for _ in 0..15 {
        let (s, v) = h.query(&a, "SELECT 1", json!([])).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(code(&v), "rate_limited");
            limited += 1;
        }
    }
    assert!(limited >= 3, "only {limited} of 15 rate-limited (burst 10)");
    // Another token has its own bucket.
    h.ok(&b, "SELECT 1").await;
}

#[tokio::test]
async fn health_ready_metrics() {
    let h = Harness::new(true).await;
    assert_eq!(h.get("/health").await.0, StatusCode::OK);
    assert_eq!(h.get("/ready").await.0, StatusCode::OK);
    h.tenant("m").await;
    let t = h.token("m", "SELECT").await;
    h.ok(&t, "SELECT 1").await;
    let (s, body) = h.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("postgate_requests_total{endpoint=\"query\",outcome=\"ok\"} 1"),
        "{body}"
    );
}

#[tokio::test]
async fn revocation_reaches_every_replica_within_a_second() {
    let h = Harness::new(true).await;
    let replica = h.replica();
    h.tenant("rev").await;
    let token = h.token("rev", "SELECT").await;
    let body = json!({"sql": "SELECT 1"}).to_string();
    // Both replicas have served (and cached) the token.
    for _ in 0..3 {
        assert_eq!(
            h.post_raw("/query", &token, body.clone()).await.0,
            StatusCode::OK
        );
        assert_eq!(
            post_to(&replica, "/query", &token, body.clone()).await.0,
            StatusCode::OK
        );
    }
    let prefix: String = token.chars().take(11).collect();
    admin::revoke_token(&h.admin().await, &prefix)
        .await
        .unwrap();
    let revoked = std::time::Instant::now();
    loop {
        let a = h.post_raw("/query", &token, body.clone()).await.0;
        let b = post_to(&replica, "/query", &token, body.clone()).await.0;
        if a == StatusCode::UNAUTHORIZED && b == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(1),
            "still accepted {:?} after revocation ({a}, {b})",
            revoked.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And it stays revoked (no stale cache entry comes back).
    for _ in 0..5 {
        assert_eq!(
            post_to(&replica, "/query", &token, body.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// Statements stay prepared on postgate's connections; a schema change under them (a result type
/// or a parameter type that no longer fits) is answered by preparing afresh, not by an error.
#[tokio::test]
async fn prepared_statements_follow_schema_changes() {
    let h = Harness::new(true).await;
    h.tenant("sc").await;
    let ddl = h.token("sc", "SELECT,INSERT,UPDATE,DELETE,DDL").await;
    let ro = h.token("sc", "SELECT").await;
    h.ok(&ddl, "CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await;
    h.ok(&ddl, "INSERT INTO t VALUES (1, '10'), (2, '20')")
        .await;
    let by_id = "SELECT v FROM t WHERE id = $1";
    let by_v = "SELECT id FROM t WHERE v = $1";
    // More calls than the pool has connections: every connection prepares both.
    for _ in 0..8 {
        let (s, v) = h.query(&ro, by_id, json!([1])).await;
        assert_eq!((s, &v["rows"]), (StatusCode::OK, &json!([["10"]])), "{v}");
        let (s, v) = h.query(&ro, by_v, json!(["20"])).await;
        assert_eq!((s, &v["rows"]), (StatusCode::OK, &json!([[2]])), "{v}");
    }
    h.ok(&ddl, "ALTER TABLE t ALTER COLUMN v TYPE int USING v::int")
        .await;
    for _ in 0..8 {
        // The result type changed (text to int4).
        let (s, v) = h.query(&ro, by_id, json!([1])).await;
        assert_eq!((s, &v["rows"]), (StatusCode::OK, &json!([[10]])), "{v}");
        assert_eq!(v["columns"][0]["type"], json!("int4"));
        // The parameter's type changed (text to int4).
        let (s, v) = h.query(&ro, by_v, json!([20])).await;
        assert_eq!((s, &v["rows"]), (StatusCode::OK, &json!([[2]])), "{v}");
    }
    // A real error stays an error, after the one fresh attempt.
    let (s, v) = h.query(&ro, by_v, json!(["twenty"])).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["sqlstate"], json!("22P02"));
}
