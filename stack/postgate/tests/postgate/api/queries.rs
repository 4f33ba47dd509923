//! Queries: every type round-trips through JSON, a batch is atomic, and prepared statements
//! follow schema changes under them.

use crate::support::{Harness, code};
use axum::http::StatusCode;
use serde_json::{Value, json};

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
