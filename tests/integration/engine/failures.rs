//! `up` failing with one clear message: an unknown Compose key, no Docker Engine, a published
//! port already taken, a service that never gets healthy, an image that cannot be pulled.

use std::time::{Duration, Instant};

use super::{Proj, SMALL};

#[test]
fn unknown_compose_key_is_refused() {
    let p = Proj::new("key");
    p.compose(&SMALL.replace(
        "    restart: \"no\"\n",
        "    restart: \"no\"\n    privileged: true\n",
    ));
    p.s.write("conf/c.txt", "x\n");
    p.up(&[])
        .run()
        .failure()
        .stderr_contains("unsupported Compose key `privileged` in service `job`");
    assert!(p.containers().is_empty(), "nothing may be created");
}

#[test]
fn docker_unreachable_is_one_clear_line() {
    let p = Proj::new("unr");
    p.compose(SMALL);
    p.s.write("conf/c.txt", "x\n");
    let done = p
        .up(&[])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .run()
        .failure();
    let err = done.stderr();
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("cannot reach the Docker Engine at DOCKER_HOST=unix:///nonexistent.sock"),
        "{err}"
    );
    p.s.cmd(["status"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .run()
        .failure()
        .stderr_contains("cannot reach the Docker Engine");
    // A tcp:// DOCKER_HOST is honoured too (not silently replaced by the default socket).
    p.s.cmd(["status"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .run()
        .failure()
        .stderr_contains("cannot reach the Docker Engine at DOCKER_HOST=tcp://127.0.0.1:1");
}

#[test]
fn published_port_already_taken_names_the_port() {
    let p = Proj::new("port");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    p.compose(&format!(
        "name: NAME\nservices:\n  web:\n    image: debian:trixie-slim\n    command: [\"sleep\", \"infinity\"]\n    stop_grace_period: 1s\n    ports: [\"127.0.0.1:{port}:80\"]\n"
    ));
    p.up(&[])
        .run()
        .failure()
        .stderr_contains(&format!("port 127.0.0.1:{port} is already in use"))
        .stderr_contains("hint: stop what holds it");
    drop(listener);
    p.up(&[]).run().success();
}

#[test]
fn never_healthy_names_the_service_and_shows_its_log() {
    let p = Proj::new("sick");
    p.compose(
        r#"name: NAME
services:
  sick:
    image: debian:trixie-slim
    command: ["sh", "-c", "echo booting the sick service; echo missing the widget >&2; sleep infinity"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD-SHELL", "exit 1"]
      interval: 1s
      retries: 2
  after:
    image: debian:trixie-slim
    command: ["sleep", "infinity"]
    depends_on:
      sick: {condition: service_healthy}
"#,
    );
    let started = Instant::now();
    let done = p.up(&["--wait-timeout", "30"]).run().failure();
    let err = done.stderr();
    assert!(
        err.contains("service `sick` failed (service_healthy)"),
        "{err}"
    );
    assert!(
        err.contains("booting the sick service") && err.contains("missing the widget"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "Docker's unhealthy verdict should end the wait early"
    );
    assert!(
        !p.containers().contains_key("after-1"),
        "a dependent of an unhealthy service must not start"
    );

    // A crash loop under a restart policy fails at once, not at the deadline.
    p.compose(
        "name: NAME\nservices:\n  crashy:\n    image: debian:trixie-slim\n    command: [\"sh\", \"-c\", \"echo config is broken; exit 2\"]\n    restart: unless-stopped\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n",
    );
    let started = Instant::now();
    p.up(&["--wait-timeout", "60"])
        .run()
        .failure()
        .stderr_contains("service `crashy` failed (service_healthy)")
        .stderr_contains("config is broken");
    assert!(started.elapsed() < Duration::from_secs(30));

    // A one-off that exits non-zero fails `up` with its log.
    p.compose("name: NAME\nservices:\n  job:\n    image: debian:trixie-slim\n    command: [\"sh\", \"-c\", \"echo migration 7 broke; exit 3\"]\n    restart: \"no\"\n");
    p.up(&[])
        .run()
        .failure()
        .stderr_contains("exited with code 3")
        .stderr_contains("migration 7 broke");
}

#[test]
fn an_image_that_cannot_be_pulled_is_named_with_how_to_provide_it() {
    let p = Proj::new("pull");
    p.compose("name: NAME\nservices:\n  web:\n    image: registry.invalid/nobody/nothing:1.0\n    command: [\"true\"]\n");
    p.up(&[])
        .run()
        .failure()
        .stderr_contains(
            "image registry.invalid/nobody/nothing:1.0 is not on this machine and cannot be pulled",
        )
        .stderr_contains("docker load")
        .stderr_contains("[images] in stack.toml");
    assert!(p.containers().is_empty());
}
