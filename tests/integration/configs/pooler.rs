//! The pooler's configs (pgCat's TOML, PgBouncer's ini and user list): the database, pools and
//! pooled logins follow stack.toml and .env, with SCRAM verifiers that match the passwords, also
//! after a rotation.

use std::collections::BTreeMap;

use super::scram::scram_verifies;
use super::{DOKPLOY_FILE, POOLED, config_mount, rendered};
use crate::support::Stackctl;

/// Named prepared statements through a transaction-mode pool need the pooler's statement cache:
/// pgCat's default is none (`prepared_statements_cache_size = 0`, where `pgbench -M prepared`
/// fails at once); both poolers get `[pooler] prepared_statements`.
#[test]
fn transaction_pools_cache_prepared_statements() {
    let s = Stackctl::new();
    s.cmd(["init", "--pooler", "pgcat"]).run().success();
    s.cmd(["render"]).run().success();
    let t = pgcat(&s);
    let pools = t["pools"].as_table().unwrap();
    assert!(!pools.is_empty());
    for (name, pool) in pools {
        assert_eq!(pool["pool_mode"].as_str(), Some("transaction"), "{name}");
        assert_eq!(
            pool["prepared_statements_cache_size"].as_integer(),
            Some(500),
            "pool {name} caches prepared statements (the default of [pooler] prepared_statements)"
        );
    }
    s.edit(
        "stack.toml",
        "prepared_statements = 500",
        "prepared_statements = 321",
    );
    s.cmd(["render"]).run().success();
    for (name, pool) in pgcat(&s)["pools"].as_table().unwrap() {
        assert_eq!(
            pool["prepared_statements_cache_size"].as_integer(),
            Some(321),
            "{name}"
        );
    }
    s.edit("stack.toml", "kind = \"pgcat\"", "kind = \"pgbouncer\"");
    s.cmd(["render"]).run().success();
    let (_, ini_rel) = config_mount(&s, "pgbouncer", "pgbouncer_ini");
    let ini = ini::Ini::load_from_str(&s.read(&ini_rel)).expect("pgbouncer.ini parses");
    let pb = ini.section(Some("pgbouncer")).expect("[pgbouncer]");
    assert_eq!(pb.get("max_prepared_statements"), Some("321"));
    // No cache in a transaction-mode pool is refused, with the key and the line.
    s.edit(
        "stack.toml",
        "prepared_statements = 321",
        "prepared_statements = 0",
    );
    s.cmd(["render"])
        .run()
        .failure()
        .stderr_contains("pooler.prepared_statements is 0");
}

fn pgcat(s: &Stackctl) -> toml::Table {
    let (target, rel) = config_mount(s, "pgcat", "pgcat_toml");
    assert_eq!(target, "/etc/pgcat/pgcat.toml");
    toml::from_str(&s.read(&rel)).expect("pgcat.toml parses")
}

#[test]
fn pgcat_pool_is_the_database_and_its_users_are_the_pooled_logins() {
    let s = rendered("pgcat");
    let env = s.env_values();
    let t = pgcat(&s);
    let g = t["general"].as_table().unwrap();
    assert_eq!(g["port"].as_integer(), Some(6432));
    assert_eq!(g["admin_username"].as_str(), Some("pooler_admin"));
    assert_eq!(
        g["admin_password"].as_str(),
        Some(env["POOLER_ADMIN_PASSWORD"].as_str())
    );
    if g.get("enable_prometheus_exporter")
        .and_then(toml::Value::as_bool)
        == Some(true)
    {
        let port = g["prometheus_exporter_port"]
            .as_integer()
            .expect("prometheus_exporter_port");
        assert!(
            (1..=32767).contains(&port),
            "pgCat's exporter port must be ≤ 32767: {port}"
        );
    }

    let pools = t["pools"].as_table().unwrap();
    assert_eq!(
        pools.keys().collect::<Vec<_>>(),
        ["shop"],
        "the pool name is the database clients connect to"
    );
    let pool = pools["shop"].as_table().unwrap();
    assert_eq!(pool["pool_mode"].as_str(), Some("session"));
    let users: BTreeMap<String, String> = pool["users"]
        .as_table()
        .unwrap()
        .values()
        .map(|u| {
            let u = u.as_table().unwrap();
            assert_eq!(u["pool_size"].as_integer(), Some(17));
            assert_eq!(u["min_pool_size"].as_integer(), Some(3));
            (
                u["username"].as_str().unwrap().to_string(),
                u["password"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = POOLED
        .iter()
        .map(|(k, role)| (role.to_string(), env[*k].clone()))
        .collect();
    assert_eq!(users, expected);

    let shards = pool["shards"].as_table().unwrap();
    assert!(!shards.is_empty());
    for shard in shards.values() {
        assert_eq!(shard["database"].as_str(), Some("shop"));
        for server in shard["servers"].as_array().unwrap() {
            let server = server.as_array().unwrap();
            assert_eq!(
                server[0].as_str(),
                Some("postgres"),
                "shard servers point at the postgres service"
            );
            assert_eq!(server[1].as_integer(), Some(5432));
            assert!(["primary", "replica"].contains(&server[2].as_str().unwrap()));
        }
    }
    assert!(s.yaml(DOKPLOY_FILE)["services"]["postgres"].is_mapping());
}

/// `"role" "secret"` lines of a PgBouncer auth file.
fn userlist(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| {
            let parts: Vec<&str> = l.split('"').collect();
            assert!(
                parts.len() == 5 && parts[0].is_empty() && parts[2] == " " && parts[4].is_empty(),
                "bad userlist line {l:?}"
            );
            (parts[1].to_string(), parts[3].to_string())
        })
        .collect()
}

#[test]
fn pgbouncer_ini_and_userlist_match_stack_toml_and_env() {
    let s = rendered("pgbouncer");
    let env = s.env_values();
    let (ini_target, ini_rel) = config_mount(&s, "pgbouncer", "pgbouncer_ini");
    assert_eq!(ini_target, "/etc/pgbouncer/pgbouncer.ini");
    let ini = ini::Ini::load_from_str(&s.read(&ini_rel)).expect("pgbouncer.ini parses");
    let db = ini.section(Some("databases")).expect("[databases]");
    let conn = db.get("shop").expect("the database is in [databases]");
    let kv: BTreeMap<&str, &str> = conn
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .collect();
    assert_eq!(kv.get("host"), Some(&"postgres"));
    assert_eq!(kv.get("port"), Some(&"5432"));
    assert_eq!(kv.get("dbname"), Some(&"shop"));
    let pb = ini.section(Some("pgbouncer")).expect("[pgbouncer]");
    assert_eq!(pb.get("auth_type"), Some("scram-sha-256"));
    assert_eq!(pb.get("listen_port"), Some("6432"));
    assert_eq!(pb.get("pool_mode"), Some("session"));
    assert_eq!(pb.get("default_pool_size"), Some("17"));
    assert_eq!(pb.get("min_pool_size"), Some("3"));
    assert_eq!(pb.get("max_client_conn"), Some("700"));
    assert_eq!(pb.get("admin_users"), Some("pooler_admin"));

    let (list_target, list_rel) = config_mount(&s, "pgbouncer", "pgbouncer_userlist");
    // The image's entrypoint copies /etc/pgbouncer/* (the mounts) to a private /run/pgbouncer
    // owned by the pgbouncer user, because Compose bind-mounts config files with host modes.
    assert!(list_target.starts_with("/etc/pgbouncer/"), "{list_target}");
    assert_eq!(
        pb.get("auth_file"),
        Some(
            list_target
                .replace("/etc/pgbouncer/", "/run/pgbouncer/")
                .as_str()
        ),
        "auth_file is the private copy of the mounted userlist"
    );
    let mut users = userlist(&s.read(&list_rel));
    // PgBouncer's auth_user logs in by itself, so it holds that one login's clear password; the
    // logins it looks up (postgate's tenant logins) come from pooler.auth_lookup.
    assert_eq!(
        users.remove("pooler_auth").as_deref(),
        Some(env["POOLER_AUTH_PASSWORD"].as_str())
    );
    assert_eq!(pb.get("auth_user"), Some("pooler_auth"));
    assert_eq!(
        pb.get("auth_query"),
        Some("SELECT username, password FROM pooler.auth_lookup($1)")
    );
    let mut expected: BTreeMap<&str, &str> = POOLED
        .iter()
        .map(|(k, role)| (*role, env[*k].as_str()))
        .collect();
    expected.insert("pooler_admin", env["POOLER_ADMIN_PASSWORD"].as_str());
    // pgbouncer_exporter reads the admin console as `monitor`, one of the stats_users.
    expected.insert("monitor", env["MONITOR_DB_PASSWORD"].as_str());
    assert_eq!(
        users.keys().map(String::as_str).collect::<Vec<_>>(),
        expected.keys().copied().collect::<Vec<_>>()
    );
    for (role, password) in &expected {
        let v = &users[*role];
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{role}: {v}");
        assert!(
            scram_verifies(v, password),
            "{role}: the verifier does not match its password in .env"
        );
        assert!(
            !s.read(&list_rel).contains(password),
            "{role}: plain password in userlist.txt"
        );
    }
}

#[test]
fn rotating_a_password_updates_the_pooler_configs() {
    for pooler in ["pgcat", "pgbouncer"] {
        let s = rendered(pooler);
        let before = s.env_values()["APP_DB_PASSWORD"].clone();
        s.cmd(["init", "--rotate", "APP_DB_PASSWORD"])
            .run()
            .success();
        let after = s.env_values()["APP_DB_PASSWORD"].clone();
        assert_ne!(before, after);
        // init rewrites the stack directory's copy at once...
        let own = if pooler == "pgcat" {
            s.read("pgcat/pgcat.toml")
        } else {
            s.read("pgbouncer/userlist.txt")
        };
        if pooler == "pgcat" {
            assert!(own.contains(&after) && !own.contains(&before));
        } else {
            let users = userlist(&own);
            assert!(scram_verifies(&users["app"], &after));
        }
        // ...and render refreshes Dokploy's.
        s.cmd(["render"]).run().success();
        if pooler == "pgcat" {
            let t = pgcat(&s);
            let users = t["pools"]["shop"]["users"].as_table().unwrap();
            let app = users
                .values()
                .find(|u| u["username"].as_str() == Some("app"))
                .unwrap();
            assert_eq!(app["password"].as_str(), Some(after.as_str()));
        } else {
            let (_, rel) = config_mount(&s, "pgbouncer", "pgbouncer_userlist");
            let users = userlist(&s.read(&rel));
            assert!(scram_verifies(&users["app"], &after));
            assert!(!scram_verifies(&users["app"], &before));
        }
    }
}
