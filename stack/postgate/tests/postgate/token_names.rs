//! `postgate token create` without `--name`, twice (a read token, then a write token): each gets
//! a name of its own (`default`, `default-2`), said on stderr; a name given twice is refused with
//! a message that says to pass another `--name`, not a raw constraint error.

use std::process::{Command, Output};

use crate::support::{PEPPER, Pg, test_role_bootstrap};

const ADMIN_PASSWORD: &str = "token-names-admin";

/// Runs the real `postgate` binary as an admin login holding postgate_admin.
fn postgate(pg: &Pg, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postgate"))
        .args(args)
        .env_remove("POSTGATE_DATABASE_URL")
        .env(
            "POSTGATE_ADMIN_DATABASE_URL",
            pg.url("token_names_admin", ADMIN_PASSWORD),
        )
        .env(
            "POSTGATE_TOKEN_PEPPER",
            std::str::from_utf8(PEPPER).unwrap(),
        )
        .output()
        .expect("running postgate")
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `token create` that must succeed: (the token on stdout, stderr).
fn create_ok(pg: &Pg, args: &[&str]) -> (String, String) {
    let mut all = vec!["token", "create", "--tenant", "acme"];
    all.extend_from_slice(args);
    let o = postgate(pg, &all);
    assert!(o.status.success(), "token create {args:?}: {}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout carries only the token: {}",
        show(&o)
    );
    (
        stdout.trim().to_string(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_tokens_get_distinct_names_and_a_taken_name_is_refused_clearly() {
    let pg = Pg::start().await;
    let su = pg.superuser().await;
    test_role_bootstrap(&su).await;
    su.batch_execute(&format!(
        "CREATE ROLE token_names_admin LOGIN PASSWORD '{ADMIN_PASSWORD}';
         GRANT postgate_admin TO token_names_admin;"
    ))
    .await
    .expect("admin login");
    let o = postgate(&pg, &["tenant", "create", "acme"]);
    assert!(o.status.success(), "tenant create: {}", show(&o));

    // A read token, then a write token, neither named: both made, each named, and said so.
    let (read, err1) = create_ok(&pg, &["--permissions", "SELECT"]);
    let (write, err2) = create_ok(&pg, &["--permissions", "SELECT,INSERT,UPDATE,DELETE,DDL"]);
    assert!(err1.contains("named `default`"), "{err1}");
    assert!(err2.contains("named `default-2`"), "{err2}");
    assert_ne!(read, write);
    let rows = su
        .query(
            "SELECT name, permissions FROM postgate.tokens WHERE tenant = 'acme' ORDER BY id",
            &[],
        )
        .await
        .expect("tokens");
    let got: Vec<(String, Vec<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        [
            ("default".to_string(), vec!["SELECT".to_string()]),
            (
                "default-2".to_string(),
                ["SELECT", "INSERT", "UPDATE", "DELETE", "DDL"]
                    .map(String::from)
                    .to_vec()
            ),
        ]
    );

    // A name given explicitly is kept as given; given again, it is refused with what to do.
    let (_, err3) = create_ok(&pg, &["--permissions", "SELECT", "--name", "reader"]);
    assert!(err3.contains("named `reader`"), "{err3}");
    let o = postgate(
        &pg,
        &[
            "token",
            "create",
            "--tenant",
            "acme",
            "--permissions",
            "SELECT",
            "--name",
            "reader",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        err.contains("tenant acme already has a token named `reader`") && err.contains("--name"),
        "{}",
        show(&o)
    );
    assert!(!err.contains("duplicate key"), "{}", show(&o));
    assert!(o.stdout.is_empty(), "no token printed: {}", show(&o));

    // A third unnamed one skips every taken name.
    let (_, err4) = create_ok(&pg, &["--permissions", "SELECT"]);
    assert!(err4.contains("named `default-3`"), "{err4}");
}
