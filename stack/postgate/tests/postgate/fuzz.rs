//! Fuzzing with a fixed budget (proptest): the request decoder and the statement check never panic,
//! whatever bytes or SQL-like text they get.

use postgate::check::{CheckError, check, check_all};
use postgate::http::{BatchRequest, QueryRequest, decode};
use postgate::token::Permissions;
use proptest::prelude::*;

const FRAGMENTS: &[&str] = &[
    "SELECT",
    "INSERT INTO t VALUES (1)",
    "DELETE FROM t",
    "SET ROLE x",
    "RESET ROLE",
    ";",
    "--",
    "/*",
    "*/",
    "$$",
    "$a$",
    "'",
    "\"",
    "E'\\''",
    "(",
    ")",
    "WITH d AS (",
    "FOR UPDATE",
    "COPY",
    "DO",
    "set_config('role','x',true)",
    "query_to_xml('",
    "beta.secret",
    "\n",
    "U&\"\\0061\"",
    "\\;",
    "BEGIN",
    "COMMIT",
    "LISTEN x",
    "1e999999",
    "ARRAY[",
    "]",
    "::int",
    "$1",
    "\u{0}",
    "é",
];

fn sqlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn statement_check_never_panics(sql in sqlish(), noise in ".{0,64}") {
        for perms in ["SELECT", "SELECT,INSERT,UPDATE,DELETE", "SELECT,INSERT,UPDATE,DELETE,DDL"] {
            let p = Permissions::parse(perms).unwrap();
            let _ = check(&sql, p, "acme");
            let _ = check(&format!("{sql}{noise}"), p, "acme");
        }
    }

    #[test]
    fn request_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), sql in sqlish()) {
        let _ = decode::<QueryRequest>(&bytes);
        let _ = decode::<BatchRequest>(&bytes);
        let body = serde_json::json!({"sql": sql, "params": [1, "x", null, [1, [2]], {"a": 1}], "rows_as": "objects"});
        let q = decode::<QueryRequest>(body.to_string().as_bytes());
        prop_assert!(q.is_ok());
    }
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let p = Permissions::parse("SELECT").unwrap();
    // Redundant parentheses add no node: fine either way, but no crash.
    let parens = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    let _ = check(&parens, p, "acme");
    // Beyond what an 8 MiB stack survives (it overflowed at 50k before check_all).
    for n in [500, 5000, 50_000] {
        let deep = format!("SELECT 1{}", "+1".repeat(n));
        let subqueries = format!(
            "SELECT {}1{}",
            "(SELECT ".repeat(n / 10),
            ")".repeat(n / 10)
        );
        let r = check_all(vec![deep, subqueries], p, "acme".into());
        assert!(
            matches!(r, Err((0, CheckError::Syntax(_) | CheckError::Denied(_)))),
            "{n}: {r:?}"
        );
    }
    let deep_json = format!(
        "{{\"sql\": \"x\", \"params\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(decode::<QueryRequest>(deep_json.as_bytes()).is_err());
}
