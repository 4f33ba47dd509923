//! `runner worker deploy` (admin::deploy) against PostgreSQL 17 with postgate's schema: an
//! identical manifest changes nothing, any difference makes a new version, and a deploy that
//! fails in its transaction revokes the token it made.

use runner::admin::{self, DbBinding, Manifest};
use runner::secrets::SecretsKey;

use crate::support::{Pg, connect};

const PEPPER: &[u8] = b"runner-admin-test-pepper-32-bytes!";

fn manifest() -> Manifest {
    let mut m: Manifest = serde_json::from_str(
        r#"{"name": "notes", "source": "export default { fetch() { return new Response('v1'); } };",
            "routes": ["/notes"], "vars": {"GREETING": "hi"}, "cron": "*/5 * * * *",
            "limits": {"cpu_ms": 20, "memory_mb": null, "wall_ms": null, "body_bytes": 1024, "concurrency": null}}"#,
    )
    .expect("manifest");
    m.secrets.insert("API_KEY".into(), "k-1".into());
    m
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test]
async fn identical_deploys_change_nothing_and_failed_deploys_revoke_their_token() {
    let pg = Pg::start().await;
    let mut c = connect(&pg.url).await;
    c.batch_execute(postgate::schema::SQL)
        .await
        .expect("postgate's schema");
    let key = SecretsKey::from_hex(&"5a".repeat(32)).expect("key");
    let versions = "SELECT count(*) FROM runner.worker_versions WHERE worker = 'notes'";

    let m = manifest();
    let d = admin::deploy(&mut c, &m, Some(&key), Some(PEPPER))
        .await
        .expect("first deploy");
    assert_eq!((d.version, d.unchanged), (1, false));
    assert_eq!(d.secrets, vec!["API_KEY".to_string()]);

    let d = admin::deploy(&mut c, &m, Some(&key), Some(PEPPER))
        .await
        .expect("same deploy");
    assert_eq!((d.version, d.unchanged), (1, true), "identical: unchanged");
    assert_eq!(count(&c, versions).await, 1, "no version was written");

    // A manifest that no longer names the secret keeps it: still the same deployment.
    let mut without_secret = m.clone();
    without_secret.secrets.clear();
    let d = admin::deploy(&mut c, &without_secret, Some(&key), Some(PEPPER))
        .await
        .expect("deploy without the secret");
    assert!(d.unchanged, "a kept secret is no change");

    // Each difference is a new version: a secret's value, a limit, a var, the schedule's time
    // zone, the source.
    let mut changes: Vec<(&str, Manifest)> = Vec::new();
    let mut x = m.clone();
    x.secrets.insert("API_KEY".into(), "k-2".into());
    changes.push(("secret value", x.clone()));
    x.limits.cpu_ms = Some(30);
    changes.push(("cpu limit", x.clone()));
    x.vars.insert("GREETING".into(), "hello".into());
    changes.push(("var", x.clone()));
    x.timezone = Some("Europe/Paris".into());
    changes.push(("time zone", x.clone()));
    x.source = x.source.replace("v1", "v2");
    changes.push(("source", x.clone()));
    for (i, (what, x)) in changes.iter().enumerate() {
        let d = admin::deploy(&mut c, x, Some(&key), Some(PEPPER))
            .await
            .unwrap_or_else(|e| panic!("deploy with a new {what}: {e}"));
        assert_eq!(
            (d.version, d.unchanged),
            (i as i32 + 2, false),
            "a new {what} is a new version"
        );
        let again = admin::deploy(&mut c, x, Some(&key), Some(PEPPER))
            .await
            .expect("the same again");
        assert!(again.unchanged, "the same {what} again is unchanged");
    }

    // env.DB: the binding is part of the deployment; the same binding reuses its token.
    let mut bound = x_with_db(changes.last().expect("changes").1.clone());
    let d = admin::deploy(&mut c, &bound, Some(&key), Some(PEPPER))
        .await
        .expect("deploy with env.DB");
    assert_eq!((d.unchanged, d.db_token_created), (false, Some(true)));
    let d = admin::deploy(&mut c, &bound, Some(&key), Some(PEPPER))
        .await
        .expect("the same binding again");
    assert_eq!((d.unchanged, d.db_token_created), (true, Some(false)));
    let live = "SELECT count(*) FROM postgate.tokens
                 WHERE name LIKE 'runner-worker:notes:%' AND revoked_at IS NULL";
    assert_eq!(count(&c, live).await, 1);
    // A token revoked by hand (`stackctl token revoke`) is not reused: the same deploy makes a
    // new one.
    c.execute(
        "UPDATE postgate.tokens SET revoked_at = now() WHERE name LIKE 'runner-worker:notes:%'",
        &[],
    )
    .await
    .expect("revoke by hand");
    let d = admin::deploy(&mut c, &bound, Some(&key), Some(PEPPER))
        .await
        .expect("the same binding, token revoked");
    assert_eq!((d.unchanged, d.db_token_created), (false, Some(true)));
    assert_eq!(count(&c, live).await, 1, "a new live token");

    // A deploy that fails inside its transaction (here: a trigger that refuses new versions)
    // after a new token was made (new permissions) leaves no live token behind but the old one.
    c.batch_execute(
        "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON runner.worker_versions
           FOR EACH ROW EXECUTE FUNCTION public.refuse();",
    )
    .await
    .expect("fault trigger");
    bound.db.as_mut().expect("db").permissions = vec!["SELECT".into(), "INSERT".into()];
    let all = "SELECT count(*) FROM postgate.tokens WHERE name LIKE 'runner-worker:notes:%'";
    let before = count(&c, all).await;
    let err = admin::deploy(&mut c, &bound, Some(&key), Some(PEPPER))
        .await
        .expect_err("the trigger refuses the version");
    assert!(
        err.to_string().contains("storing the worker version"),
        "{err}"
    );
    assert_eq!(count(&c, all).await, before + 1, "a token was made");
    assert_eq!(
        count(&c, live).await,
        1,
        "and revoked again: only the old one is live"
    );
    c.batch_execute("DROP TRIGGER refuse ON runner.worker_versions")
        .await
        .expect("drop fault trigger");
    let d = admin::deploy(&mut c, &bound, Some(&key), Some(PEPPER))
        .await
        .expect("deploy after the fault");
    assert_eq!((d.unchanged, d.db_token_created), (false, Some(true)));
    assert_eq!(
        count(&c, live).await,
        1,
        "the new token replaced the old one"
    );
    println!(
        "admin: identical deploys unchanged ({} kinds of change each made one version); a failed deploy revoked its token",
        changes.len()
    );
}

fn x_with_db(mut m: Manifest) -> Manifest {
    m.db = Some(DbBinding {
        tenant: "notes_app".into(),
        permissions: vec!["SELECT".into()],
    });
    m
}

/// After `RUNNER_SECRETS_KEY` is rotated, the runner given the old key as previous seals the
/// stored secrets again under the new one (once: a second pass changes nothing); a secret that
/// no key opens is reported and left as it is.
#[tokio::test]
async fn a_rotated_key_reseals_stored_secrets() {
    let pg = Pg::start().await;
    let mut c = connect(&pg.url).await;
    let old = "a1".repeat(32);
    let new = "b2".repeat(32);
    let old_key = SecretsKey::from_hex(&old).expect("old key");
    let mut m = manifest();
    m.name = "rotating".into();
    admin::deploy(&mut c, &m, Some(&old_key), None)
        .await
        .expect("deploy under the old key");
    // A row sealed under a key nobody has any more.
    let lost = SecretsKey::from_hex(&"c3".repeat(32)).expect("lost key");
    let (nonce, sealed) = lost.seal("rotating", "LOST", "gone").expect("seal");
    c.execute(
        "INSERT INTO runner.worker_secrets (worker, name, nonce, sealed) VALUES ('rotating', 'LOST', $1, $2)",
        &[&nonce, &sealed],
    )
    .await
    .expect("insert");

    let rotated = SecretsKey::from_hex(&new)
        .and_then(|k| k.with_previous(&old))
        .expect("rotated key");
    let first = runner::reseal::reseal(&c, &rotated).await.expect("reseal");
    assert_eq!(first.resealed, 1, "API_KEY moved to the new key");
    assert_eq!(
        first.unopenable,
        vec![("rotating".to_string(), "LOST".to_string())]
    );
    let again = runner::reseal::reseal(&c, &rotated).await.expect("reseal");
    assert_eq!(again.resealed, 0, "nothing left to move");

    let new_only = SecretsKey::from_hex(&new).expect("new key");
    let r = c
        .query_one(
            "SELECT nonce, sealed FROM runner.worker_secrets WHERE worker = 'rotating' AND name = 'API_KEY'",
            &[],
        )
        .await
        .expect("row");
    let opened = new_only
        .open("rotating", "API_KEY", r.get(0), r.get(1))
        .expect("opens with the new key alone");
    assert_eq!(opened.expose(), "k-1");
    assert!(
        old_key
            .open("rotating", "API_KEY", r.get(0), r.get(1))
            .is_err(),
        "no longer under the old key"
    );
    // The deployment is still the same one: its secret compares equal under the new key.
    let d = admin::deploy(&mut c, &m, Some(&new_only), None)
        .await
        .expect("deploy again");
    assert!(d.unchanged, "the resealed secret holds the same value");
    println!("reseal: 1 secret moved to the new key, 1 unopenable reported, second pass 0");
}
