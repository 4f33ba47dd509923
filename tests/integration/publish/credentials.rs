//! Registry credentials: none, wrong and right, from every source publish reads them from, and
//! `up` pulling with the Docker config's.

use std::path::PathBuf;

use super::fixtures::{Images, Project, run_with_stdin};
use super::registry::Registry;
use crate::support::{Stackctl, assert_unchanged, docker, image_exists};

/// Credentials: none, wrong (refused, the secret never printed) and right, from the flags, the
/// environment, the Docker config's `auths` and a credential helper.
#[test]
fn credentials_wrong_are_refused_and_every_source_of_right_ones_works() {
    let password = format!("pw-{}-right", std::process::id());
    let reg = Registry::start(Some(("pubuser", &password)));
    let local = format!("stackctl-pubtest-{}-auth/postgres:1", std::process::id());
    let remote = format!("{}/auth/postgres:1", reg.host());
    let _cleanup = Images(vec![local.clone(), remote.clone()]);
    docker(&["tag", "debian:trixie-slim", &local]);
    let p = Project::new("c");
    p.set_image("postgres", &local);
    let registry = format!("{}/auth", reg.host());
    // An empty Docker config, so the user's own never leaks in.
    let config = tempfile::tempdir().unwrap();
    let cfg = config.path().to_str().unwrap().to_string();
    let publish = |extra: &[&str]| {
        let extra: Vec<&str> = extra.iter().copied().chain(["postgres"]).collect();
        let extra = extra.as_slice();
        p.publish(&registry, extra).env("DOCKER_CONFIG", &cfg)
    };
    let before = p.s.snapshot();

    // None.
    publish(&[])
        .run()
        .failure()
        .stderr_contains(&format!("the registry {} requires credentials", reg.host()))
        .stderr_contains("docker login");
    // Wrong, from the flags.
    let wrong_pw = "wrong-secret-xyz";
    let wrong = run_with_stdin(
        publish(&["--username", "pubuser", "--password-stdin"]),
        &format!("{wrong_pw}\n"),
    )
    .failure()
    .stderr_contains(&format!(
        "the registry {} refused the credentials of user pubuser",
        reg.host()
    ))
    .stderr_contains("hint:");
    assert!(!wrong.stderr().contains(wrong_pw) && !wrong.stdout().contains(wrong_pw));
    println!(
        "wrong credentials: {}",
        wrong
            .stderr()
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap()
    );
    // Wrong, from the environment.
    publish(&[])
        .env("STACKCTL_REGISTRY_USERNAME", "pubuser")
        .env("STACKCTL_REGISTRY_PASSWORD", wrong_pw)
        .run()
        .failure()
        .stderr_contains("refused the credentials of user pubuser");
    assert_unchanged(&before, &p.s.snapshot());
    assert!(!image_exists(&remote), "a refused publish tagged {remote}");

    // Right, from the flags.
    run_with_stdin(
        publish(&["--username", "pubuser", "--password-stdin"]),
        &format!("{password}\n"),
    )
    .success()
    .stdout_contains(&remote);
    // From the environment.
    publish(&[])
        .env("STACKCTL_REGISTRY_USERNAME", "pubuser")
        .env("STACKCTL_REGISTRY_PASSWORD", &password)
        .run()
        .success()
        .stderr_contains("credentials from --username and STACKCTL_REGISTRY_PASSWORD");
    // From the Docker config's auths (base64 of user:password).
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("pubuser:{password}"));
    std::fs::write(
        config.path().join("config.json"),
        format!(
            r#"{{"auths": {{"http://{}": {{"auth": "{auth}"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    publish(&[])
        .run()
        .success()
        .stderr_contains("config.json (auths.");
    // From a credential helper named in the Docker config.
    let bin = tempfile::tempdir().unwrap();
    let helper: PathBuf = bin.path().join("docker-credential-pubtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n[ \"$server\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"pubuser\",\"Secret\":\"%s\"}}' \"$server\" \"$PUBTEST_SECRET\"\n",
            reg.host()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        config.path().join("config.json"),
        format!(
            r#"{{"auths": {{}}, "credHelpers": {{"{}": "pubtest"}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    publish(&[])
        .env("PATH", &path)
        .env("PUBTEST_SECRET", &password)
        .run()
        .success()
        .stderr_contains("credentials from the credential helper docker-credential-pubtest");
    // The helper's wrong secret is refused and named by its source.
    let bad = publish(&[])
        .env("PATH", &path)
        .env("PUBTEST_SECRET", wrong_pw)
        .run()
        .failure()
        .stderr_contains("refused the credentials of user pubuser (from the credential helper docker-credential-pubtest)");
    assert!(!bad.stderr().contains(wrong_pw));
    assert_eq!(p.image("postgres"), remote);

    // `up` pulls from the registry with the Docker config's credentials too.
    docker(&["rmi", &remote]);
    let q = Stackctl::new();
    let name = format!("pubpull{}", std::process::id());
    q.write("stack.toml", &format!("[project]\nname = \"{name}\"\n"));
    q.write(
        "compose.yml",
        &format!(
            "name: {name}\nservices:\n  web:\n    image: {remote}\n    command: [\"sleep\", \"infinity\"]\n    stop_grace_period: 1s\n"
        ),
    );
    struct Down<'a>(&'a Stackctl);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = self
                .0
                .cmd(["down", "--volumes", "--include-backups", "--yes"])
                .run();
        }
    }
    let _down = Down(&q);
    let compose = q.file("compose.yml");
    let compose = compose.to_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    q.cmd(["up", "-f", compose])
        .env("DOCKER_CONFIG", empty.path().to_str().unwrap())
        .run()
        .failure()
        .stderr_contains(&format!(
            "image {remote} is not on this machine and cannot be pulled"
        ));
    std::fs::write(
        config.path().join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    q.cmd(["up", "-f", compose])
        .env("DOCKER_CONFIG", &cfg)
        .run()
        .success();
    assert!(image_exists(&remote), "up did not pull {remote}");
}
