//! `stackctl publish` against a real registry: Debian's `docker-registry` (distribution 2.8),
//! started by each test on a free loopback port (plain http, which the Docker Engine allows for
//! 127.0.0.0/8) with its storage in a temp dir, and killed when the test ends.
//!
//! Images published here carry tags unique to the test (`stackctl-pubtest-<pid>-<test>/...`), so
//! removing them never touches the shared `stackctl/...` tags other tests run in parallel use;
//! a guard removes them (and the registry references) when the test ends, even on failure.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Done, Run, Stackctl, assert_unchanged, docker, free_port, require_docker};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `user`, it asks for that user and password (htpasswd, bcrypt).
    fn start(user: Option<(&str, &str)>) -> Registry {
        require_docker();
        assert!(
            std::path::Path::new(REGISTRY_BIN).is_file(),
            "this test needs Debian's docker-registry package ({REGISTRY_BIN}): `apt-get install -y docker-registry` (scripts/test.sh installs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("stackctl-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: stackctl-test\n",
            dir.path().join("data").display()
        );
        if let Some((u, p)) = user {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("running htpasswd (apache2-utils; scripts/test.sh installs it)");
            assert!(out.status.success(), "htpasswd: {out:?}");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: stackctl-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let reg = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        // Any answer will do (200, or 401 when it asks for credentials).
        while http(reg.port, "/v2/", None).is_none() {
            assert!(
                Instant::now() < deadline,
                "the registry did not answer on 127.0.0.1:{port} within 20s; its log:\n{}",
                std::fs::read_to_string(reg.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The config digest `ns/name:tag` names in this (anonymous) registry, if the tag exists.
    fn config_digest(&self, repo: &str, tag: &str) -> Option<String> {
        let body = http_get(
            self.port,
            &format!("/v2/{repo}/manifests/{tag}"),
            Some("application/vnd.docker.distribution.manifest.v2+json"),
        )?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["config"]["digest"].as_str().map(str::to_string)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a 200 answer to a plain GET on loopback, else `None`.
fn http_get(port: u16, path: &str, accept: Option<&str>) -> Option<String> {
    http(port, path, accept).and_then(|(status, body)| (status == 200).then_some(body))
}

/// A plain HTTP/1.0 GET on loopback: the status and body, or `None` when nothing answers.
fn http(port: u16, path: &str, accept: Option<&str>) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{accept}\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Removes these local image tags when dropped, and the `repo@digest` references pushes and
/// pulls left for their repositories (untagging only: never by id, never forced).
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = Command::new("docker").args(["rmi", t]).output();
            let repo = t.rsplit_once(':').map_or(t.as_str(), |(r, _)| r);
            let Ok(out) = Command::new("docker")
                .args([
                    "images",
                    "--digests",
                    "--format",
                    "{{.Repository}}@{{.Digest}}",
                    repo,
                ])
                .output()
            else {
                continue;
            };
            for r in String::from_utf8_lossy(&out.stdout).lines() {
                if !r.ends_with("@<none>") {
                    let _ = Command::new("docker").args(["rmi", r]).output();
                }
            }
        }
    }
}

fn image_exists(r: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", r])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn image_id(r: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", r])
}

/// `run` with more arguments.
fn with_args(mut run: Run, args: &[&str]) -> Run {
    run.cmd.args(args);
    run
}

/// Runs with `input` on stdin.
fn run_with_stdin(mut run: Run, input: &str) -> Done {
    run.cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = run.cmd.spawn().expect("running stackctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Done {
        out: child.wait_with_output().unwrap(),
    }
}

/// A stack directory made by `init --pooler pgbouncer` under a unique project name, with its
/// loopback ports free; `down --volumes` on drop.
struct Project {
    s: Stackctl,
}

impl Project {
    fn new(name: &str) -> Project {
        require_docker();
        let s = Stackctl::new();
        let project = format!("pub{name}{}", std::process::id());
        s.cmd(["init", "--pooler", "pgbouncer", "--project", &project])
            .run()
            .success();
        s.edit(
            "stack.toml",
            "postgres = 5432",
            &format!("postgres = {}", free_port()),
        );
        s.edit(
            "stack.toml",
            "pooler = 6432",
            &format!("pooler = {}", free_port()),
        );
        Project { s }
    }

    /// Sets `[images] name = reference`.
    fn set_image(&self, name: &str, reference: &str) {
        let text = self.s.read("stack.toml");
        let mut done = false;
        let out: Vec<String> = text
            .lines()
            .map(|l| {
                if !done && l.starts_with(&format!("{name} = \"")) {
                    done = true;
                    format!("{name} = \"{reference}\"")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(done, "stack.toml has no `{name} = ` line");
        self.s.write("stack.toml", &(out.join("\n") + "\n"));
    }

    /// `[images] name` as stack.toml holds it.
    fn image(&self, name: &str) -> String {
        let v: toml::Value = toml::from_str(&self.s.read("stack.toml")).unwrap();
        v["images"][name].as_str().unwrap().to_string()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.s.cmd(["down", "--volumes"]).run();
    }
}

fn json(done: &Done) -> serde_json::Value {
    serde_json::from_str(done.stdout().trim())
        .unwrap_or_else(|e| panic!("publish --json is not JSON ({e}):\n{}", done.stdout()))
}

/// Publish our images, check the OCI labels and `[images]`, publish again (no new layer), remove
/// every local copy, and bring up a fresh project that pulls them and becomes healthy.
#[test]
fn publish_then_a_fresh_project_pulls_and_a_second_publish_uploads_nothing() {
    let reg = Registry::start(None);
    let prefix = format!("stackctl-pubtest-{}-rt", std::process::id());
    let names = ["postgres", "pgbouncer", "stackctl"];
    let local: Vec<String> = ["postgres:17", "pgbouncer:1.24", "stackctl:1"]
        .iter()
        .map(|t| format!("{prefix}/{t}"))
        .collect();
    let remote: Vec<String> = ["postgres:17", "pgbouncer:1.24", "stackctl:1"]
        .iter()
        .map(|t| format!("{}/rt/{t}", reg.host()))
        .collect();
    let _cleanup = Images(local.iter().chain(&remote).cloned().collect());

    let a = Project::new("a");
    for (n, l) in names.iter().zip(&local) {
        a.set_image(n, l);
    }
    let registry = format!("{}/rt", reg.host());
    // Not built yet: publish builds them first.
    let first = with_args(
        a.s.cmd(["publish", "--registry", &registry, "--json"]),
        &names,
    )
    .run()
    .success();
    let report = json(&first);
    assert!(first.stderr().contains("building"), "{}", first.stderr());
    assert!(report["layers_pushed"].as_u64().unwrap() > 0, "{report}");
    for (i, r) in remote.iter().enumerate() {
        let img = &report["images"][i];
        assert_eq!(img["reference"], r.as_str());
        assert!(
            img["digest"].as_str().unwrap().starts_with("sha256:"),
            "{img}"
        );
        // The registry holds the local image: its config digest is the image id.
        let (repo, tag) = r
            .strip_prefix(&format!("{}/", reg.host()))
            .unwrap()
            .split_once(':')
            .unwrap();
        assert_eq!(
            reg.config_digest(repo, tag).as_deref(),
            Some(image_id(r).as_str())
        );
        // [images] points at the registry.
        assert_eq!(a.image(names[i]), *r);
    }
    // Only those keys changed: comments and the other images stay.
    let toml_text = a.s.read("stack.toml");
    assert!(toml_text.contains("[images]                     # every image, pinned"));
    assert!(toml_text.contains("pgcat = \"ghcr.io/postgresml/pgcat:v1.2.0\""));

    // The OCI labels.
    let labels: serde_json::Value = serde_json::from_str(&docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &remote[0],
    ]))
    .unwrap();
    println!("labels of {}: {labels}", remote[0]);
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let created = labels["org.opencontainers.image.created"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    for (label, value) in [
        (
            "org.opencontainers.image.revision",
            env!("STACKCTL_REVISION"),
        ),
        ("org.opencontainers.image.source", env!("STACKCTL_SOURCE")),
    ] {
        if value.is_empty() {
            assert!(labels.get(label).is_none(), "{labels}");
        } else {
            assert_eq!(labels[label], value, "{labels}");
        }
    }

    // Both render targets use the published references.
    a.s.cmd(["render", "--target", "dokploy"]).run().success();
    a.s.cmd(["render", "--target", "local"]).run().success();
    for f in ["dokploy/code/docker-compose.yml", "docker-compose.yml"] {
        let text = a.s.read(f);
        for r in &remote {
            assert!(text.contains(&format!("image: {r}")), "{f} lacks {r}");
        }
    }

    // Unchanged images: the second publish uploads no layer.
    let second = with_args(
        a.s.cmd(["publish", "--registry", &registry, "--json"]),
        &names,
    )
    .run()
    .success();
    let again = json(&second);
    println!(
        "second publish: layers_pushed={} stack_toml_updated={}",
        again["layers_pushed"], again["stack_toml_updated"]
    );
    assert_eq!(again["layers_pushed"], 0, "{again}");
    assert_eq!(again["stack_toml_updated"], false);
    for (i, img) in again["images"].as_array().unwrap().iter().enumerate() {
        assert!(img["layers_existing"].as_u64().unwrap() > 0, "{img}");
        assert_eq!(img["digest"], report["images"][i]["digest"]);
    }
    // The text form says the same.
    with_args(a.s.cmd(["publish", "--registry", &registry]), &names)
        .run()
        .success()
        .stdout_contains("(layers: 0 pushed,")
        .stdout_contains("stack.toml [images] already referred to these images");

    // Nothing of them left on this machine.
    for t in local.iter().chain(&remote) {
        docker(&["rmi", t]);
        assert!(!image_exists(t), "{t} is still here");
    }

    // A fresh project that names them pulls them and becomes healthy.
    let b = Project::new("b");
    for (n, r) in names.iter().zip(&remote) {
        b.set_image(n, r);
    }
    let up =
        b.s.cmd([
            "up",
            "--without",
            "observability",
            "--without",
            "apps",
            "--wait-timeout",
            "180",
        ])
        .run()
        .success()
        .stderr_contains("healthy");
    assert!(up.stderr().contains("pulling"), "{}", up.stderr());
    for (i, r) in remote.iter().enumerate() {
        let digests = docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", r]);
        let digest = report["images"][i]["digest"].as_str().unwrap();
        let repo = r.rsplit_once(':').unwrap().0;
        assert!(
            digests.contains(&format!("{repo}@{digest}")),
            "{r} was not pulled from the registry: {digests}"
        );
    }
    println!("fresh project pulled {} images and is up", remote.len());
}

/// A tag the registry holds with other content is refused (nothing pushed, stack.toml as it
/// was) unless `--force`, which replaces it.
#[test]
fn a_tag_with_different_content_is_refused_unless_force() {
    let reg = Registry::start(None);
    let prefix = format!("stackctl-pubtest-{}-force", std::process::id());
    let (one, two) = (
        format!("{prefix}-a/postgres:1"),
        format!("{prefix}-b/postgres:1"),
    );
    let remote = format!("{}/force/postgres:t1", reg.host());
    let _cleanup = Images(vec![one.clone(), two.clone(), remote.clone()]);
    // Two different images, neither carrying our build label (so used as they are): the base
    // and the base with one more label.
    docker(&["tag", "debian:trixie-slim", &one]);
    let mut build = Command::new("docker");
    build
        .args(["build", "-t", &two, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = build.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM debian:trixie-slim\nLABEL dev.stackctl.pubtest=second\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "docker build: {out:?}");
    assert_ne!(image_id(&one), image_id(&two));

    let p = Project::new("f");
    let registry = format!("{}/force", reg.host());
    p.set_image("postgres", &one);
    p.s.cmd([
        "publish",
        "--registry",
        &registry,
        "--tag",
        "t1",
        "postgres",
    ])
    .run()
    .success();
    assert_eq!(
        reg.config_digest("force/postgres", "t1"),
        Some(image_id(&one))
    );

    p.set_image("postgres", &two);
    let before = p.s.snapshot();
    let refused =
        p.s.cmd([
            "publish",
            "--registry",
            &registry,
            "--tag",
            "t1",
            "postgres",
        ])
        .run()
        .failure()
        .stderr_contains(&format!(
            "the registry {} already has 1 of these tags with different content",
            reg.host()
        ))
        .stderr_contains(&remote)
        .stderr_contains("hint:")
        .stderr_contains("--force");
    println!(
        "refused: {}",
        refused
            .stderr()
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap()
    );
    assert_unchanged(&before, &p.s.snapshot());
    assert_eq!(
        reg.config_digest("force/postgres", "t1"),
        Some(image_id(&one)),
        "the refused publish changed the registry"
    );

    p.s.cmd([
        "publish",
        "--registry",
        &registry,
        "--tag",
        "t1",
        "--force",
        "postgres",
    ])
    .run()
    .success()
    .stderr_contains("--force: replacing");
    assert_eq!(
        reg.config_digest("force/postgres", "t1"),
        Some(image_id(&two))
    );
    assert_eq!(p.image("postgres"), remote);
}

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
        with_args(p.s.cmd(["publish", "--registry", &registry]), extra).env("DOCKER_CONFIG", &cfg)
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
            let _ = self.0.cmd(["down", "--volumes"]).run();
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

/// Bad input that needs no registry at all, and a registry that does not answer: a clear error
/// with a hint, a non-zero exit, nothing written.
#[test]
fn malformed_registry_bad_tag_and_unreachable_registry_change_nothing() {
    let s = Stackctl::new();
    s.cmd(["init", "--pooler", "pgbouncer"]).run().success();
    let before = s.snapshot();
    for bad in [
        "127.0.0.1:5000",
        "acme/stack",
        "https://ghcr.io/acme",
        "ghcr.io/Acme",
        "registry.example:99999/x",
    ] {
        let d = s
            .cmd(["publish", "--registry", bad, "postgres"])
            .run()
            .failure()
            .stderr_contains(&format!("--registry `{bad}` is not HOST[:PORT]/NAMESPACE"))
            .stderr_contains("hint:");
        assert_eq!(d.stdout(), "");
    }
    s.cmd([
        "publish",
        "--registry",
        "127.0.0.1:5000/x",
        "--tag",
        "no/slash",
    ])
    .run()
    .failure()
    .stderr_contains("--tag `no/slash` is not a valid image tag");
    s.cmd(["publish", "--registry", "127.0.0.1:5000/x", "mysql"])
        .run()
        .failure()
        .stderr_contains("stackctl does not publish an image named `mysql`");
    let dead = format!("127.0.0.1:{}", free_port());
    let d = s
        .cmd(["publish", "--registry", &format!("{dead}/x"), "postgres"])
        .run()
        .failure()
        .stderr_contains(&format!("cannot reach the registry {dead}"))
        .stderr_contains("hint:");
    println!(
        "unreachable: {}",
        d.stderr()
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap()
    );
    assert_unchanged(&before, &s.snapshot());
}
