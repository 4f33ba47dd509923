//! The stack on a real single-node Docker Swarm (issue 20): the test makes the Swarm
//! (`docker swarm init --advertise-addr 127.0.0.1`) and leaves it afterwards, also when it fails
//! (a guard), and only if it made it. Images are built from this tree under tags of its own.
//!
//! Shown: `up --swarm` refuses an engine outside a Swarm and a Swarm with no database node, with
//! nothing deployed; then the rendered file deploys and every service converges; three runner
//! replicas answer a deployed worker; postgate answers a query (must-show 1); no `.env` secret
//! value in any container's or service's `docker inspect` (must-show 4); `down --swarm` then
//! `up --swarm` keeps the data (must-show 5).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    Stackctl, build_service_binaries, eventually, http_answer, require_docker, token_of,
};

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("running docker");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn swarm_state() -> String {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .1
        .trim()
        .to_string()
}

/// The Swarm this test made (left on drop), the stack it deployed and the images it built
/// (removed on drop).
struct Guard {
    s: Stackctl,
    name: String,
    tags: Vec<String>,
    made_swarm: bool,
}

impl Guard {
    fn init_swarm(&mut self) {
        if swarm_state() == "active" {
            // Someone else's Swarm: used as it is, and never left by this test.
            return;
        }
        let (ok, out) = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(ok, "docker swarm init failed: {out}");
        self.made_swarm = true;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self
            .s
            .cmd(["down", "--swarm", "--volumes", "--include-backups", "--yes"])
            .run();
        if self.made_swarm {
            let _ = docker(&["swarm", "leave", "--force"]);
        }
        for v in ["pgdata", "backups", "pgsocket"] {
            let _ = docker(&["volume", "rm", "-f", &format!("{}_{v}", self.name)]);
        }
        for t in &self.tags {
            let _ = docker(&["rmi", "-f", t]);
        }
    }
}

const HELLO: &str = r#"export default { fetch(req) { console.log('swarm hello served'); return new Response('hello from the swarm'); } };"#;

/// One HTTP/1.0 request to `ip:port` on the stack's overlay network, sent from inside
/// `container` (bash's /dev/tcp: our images have no curl); (status, body).
fn http_inside(container: &str, ip: &str, port: u16, request: &str) -> (u16, String) {
    let (_, answer) = docker(&[
        "exec",
        container,
        "bash",
        "-c",
        r#"exec 3<>"/dev/tcp/$0/$1" && printf '%s' "$2" >&3 && timeout 10 cat <&3"#,
        ip,
        &port.to_string(),
        request,
    ]);
    http_answer(&answer)
}

/// `POST /query` to postgate at `ip`, from inside `container`.
fn query_inside(container: &str, ip: &str, token: &str, sql: &str) -> (u16, String) {
    let body = serde_json::json!({ "sql": sql }).to_string();
    let request = format!(
        "POST /query HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_inside(container, ip, 8080, &request)
}

/// The addresses of the tasks of service `svc` (`tasks.SVC` in the stack's DNS), seen from
/// `container`.
fn task_ips(container: &str, svc: &str) -> Vec<String> {
    let (_, out) = docker(&[
        "exec",
        container,
        "getent",
        "ahostsv4",
        &format!("tasks.{svc}"),
    ]);
    let mut ips: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The running task containers of service `svc` of stack `name`.
fn task_containers(name: &str, svc: &str) -> Vec<String> {
    let (ok, out) = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={name}_{svc}"),
    ]);
    assert!(ok, "{out}");
    out.split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_stack_on_a_single_node_swarm_converges_serves_and_keeps_its_data() {
    require_docker();
    let started = Instant::now();
    let suffix = std::process::id() ^ (started.elapsed().as_nanos() as u32).rotate_left(11);
    let name = format!("tsw{suffix:08x}");
    let images = ["postgres", "pgbouncer", "stackctl", "postgate", "runner"];
    let tags: Vec<String> = images
        .iter()
        .map(|i| format!("stackctl/{i}:e2e-{name}"))
        .collect();
    let mut g = Guard {
        s: Stackctl::new(),
        name: name.clone(),
        tags: tags.clone(),
        made_swarm: false,
    };
    let s = &g.s;
    s.cmd(["init", "--pooler", "pgbouncer", "--project", &name])
        .run()
        .success();
    // This machine's kernel has no IPVS, so Swarm's virtual IPs (and its routing mesh) do not
    // answer here: services resolve to their tasks (dnsrr), and the test speaks to each task on
    // the stack's overlay network from inside the postgres task. No port is published.
    let mut toml = s
        .read("stack.toml")
        .replace("endpoint_mode = \"vip\"", "endpoint_mode = \"dnsrr\"")
        // Loki, Alloy and Grafana cannot be pulled here.
        .replace(
            "[observability]\nenabled = true",
            "[observability]\nenabled = false",
        );
    for (image, tag) in images.iter().zip(&tags) {
        let line = toml
            .lines()
            .find(|l| l.starts_with(&format!("{image} = \"stackctl/")))
            .unwrap_or_else(|| panic!("stack.toml has no [images] {image}"))
            .to_string();
        toml = toml.replace(&line, &format!("{image} = \"{tag}\""));
    }
    assert!(
        toml.contains("enabled = false") && toml.contains(&tags[4]) && toml.contains("\"dnsrr\""),
        "{toml}"
    );
    s.write("stack.toml", &toml);
    // `stackctl build` copies postgate's and the runner's binaries from beside stackctl.
    build_service_binaries();
    s.cmd([
        "build",
        "postgres",
        "pgbouncer",
        "stackctl",
        "postgate",
        "runner",
    ])
    .run()
    .success();
    let no_stack = || {
        let (_, out) = docker(&[
            "service",
            "ls",
            "--filter",
            &format!("label=com.docker.stack.namespace={name}"),
            "-q",
        ]);
        assert!(
            out.trim().is_empty() || out.contains("not a swarm manager"),
            "something was deployed: {out}"
        );
    };

    // Bad input: not a Swarm, then no database node. Nothing deployed either time.
    if swarm_state() != "active" {
        s.cmd(["up", "--swarm"])
            .run()
            .failure()
            .stderr_contains("not part of a Swarm")
            .stderr_contains("docker swarm init");
    }
    g.init_swarm();
    let s = &g.s;
    let node = docker(&["info", "--format", "{{.Swarm.NodeID}}"])
        .1
        .trim()
        .to_string();
    let _ = docker(&["node", "update", "--label-rm", "stackctl.postgres", &node]);
    s.cmd(["up", "--swarm"])
        .run()
        .failure()
        .stderr_contains("no Swarm node carries the label stackctl.postgres=true")
        .stderr_contains("docker node update --label-add stackctl.postgres=true");
    no_stack();
    let (ok, out) = docker(&[
        "node",
        "update",
        "--label-add",
        "stackctl.postgres=true",
        &node,
    ]);
    assert!(ok, "{out}");

    // Must-show 1: the file deploys and every service converges.
    let up = s
        .cmd(["up", "--swarm", "--wait-timeout", "300"])
        .run()
        .success();
    let report = up.stdout();
    println!("{report}\nup --swarm after {:?}", started.elapsed());
    for line in [
        "runner replicated 3/3 running",
        "postgate replicated 2/2 running",
        "migrate job 1/1 completed",
        "postgres replicated 1/1 running",
        "pgbouncer replicated 1/1 running",
        "backup replicated 1/1 running",
    ] {
        let found = report
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line);
        assert!(found, "no `{line}` in:\n{report}");
    }
    s.cmd(["status", "--swarm"])
        .run()
        .success()
        .stdout_contains("pgbouncer");
    let file = s.file("swarm/code/docker-stack.yml");
    let (ok, out) = docker(&["stack", "config", "-c", file.to_str().unwrap()]);
    assert!(ok, "docker stack config: {out}");

    // Three runner replicas answer a deployed worker: each task, at its own address.
    s.write("hello.js", HELLO);
    let hello = s.file("hello.js");
    s.cmd(["worker", "deploy", "hello", hello.to_str().unwrap()])
        .run()
        .success();
    let inside = task_containers(&name, "postgres")[0].clone();
    let runners = task_ips(&inside, "runner");
    assert_eq!(runners.len(), 3, "runner tasks: {runners:?}");
    let hello_request = "GET / HTTP/1.0\r\nHost: hello.workers.localhost\r\n\r\n";
    for ip in &runners {
        eventually(
            Duration::from_secs(20),
            &format!("hello on runner task {ip}"),
            || {
                let (code, body) = http_inside(&inside, ip, 8787, hello_request);
                (code == 200 && body == "hello from the swarm").then_some(())
            },
        );
    }
    println!(
        "3 runner replicas ({}) answered the worker",
        runners.join(", ")
    );

    // postgate answers a query: a tenant and a token made in a postgate task (as db_migrator).
    let env = s.env_values();
    let admin = format!(
        "--admin-database-url=postgres://db_migrator:{}@postgres:5432/app",
        env["MIGRATOR_PASSWORD"]
    );
    let pg = task_containers(&name, "postgate")[0].clone();
    let (ok, out) = docker(&["exec", &pg, "postgate", "tenant", "create", "acme", &admin]);
    assert!(ok, "tenant create: {out}");
    let (ok, out) = docker(&[
        "exec",
        &pg,
        "postgate",
        "token",
        "create",
        "--tenant",
        "acme",
        "--permissions",
        "SELECT,INSERT,UPDATE,DELETE,DDL",
        &admin,
    ]);
    assert!(ok, "token create: {out}");
    let token = token_of(&out);
    let postgates = task_ips(&inside, "postgate");
    assert_eq!(postgates.len(), 2, "postgate tasks: {postgates:?}");
    let (code, v) = query_inside(
        &inside,
        &postgates[0],
        &token,
        "CREATE TABLE notes (body text)",
    );
    assert_eq!(code, 200, "{v}");
    let insert = "INSERT INTO notes VALUES ('kept across down and up')";
    let (code, v) = query_inside(&inside, &postgates[1], &token, insert);
    assert_eq!(code, 200, "{v}");
    for ip in &postgates {
        let (code, v) = query_inside(&inside, ip, &token, "SELECT body FROM notes");
        assert_eq!(code, 200, "{v}");
        assert!(v.contains("kept across down and up"), "{v}");
    }

    // Must-show 4: no .env secret value in any container's or service's `docker inspect`.
    let (ok, ids) = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.stack.namespace={name}"),
    ]);
    assert!(ok);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert!(ids.len() >= 8, "{ids:?}");
    let (ok, services) = docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.stack.namespace={name}"),
    ]);
    assert!(ok);
    for what in ids
        .iter()
        .chain(services.split_whitespace().collect::<Vec<_>>().iter())
    {
        let (ok, inspect) = docker(&["inspect", what]);
        assert!(ok, "{inspect}");
        for (k, v) in &env {
            assert!(
                !inspect.contains(v.as_str()),
                "the value of {k} is in `docker inspect {what}`"
            );
        }
    }
    println!(
        "checked {} containers and their services: no .env value in `docker inspect`",
        ids.len()
    );

    // Must-show 5: down, then up again: the data is still there.
    s.cmd(["down", "--swarm"])
        .run()
        .success()
        .stdout_contains("removed from the Swarm");
    no_stack();
    s.cmd(["up", "--swarm", "--wait-timeout", "300"])
        .run()
        .success();
    let inside = task_containers(&name, "postgres")[0].clone();
    let ip = task_ips(&inside, "postgate")[0].clone();
    let v = eventually(
        Duration::from_secs(60),
        "postgate answering after up again",
        || {
            let (code, v) = query_inside(&inside, &ip, &token, "SELECT body FROM notes");
            (code == 200).then_some(v)
        },
    );
    assert!(v.contains("kept across down and up"), "{v}");
    println!("swarm scenario done in {:?}", started.elapsed());
}
