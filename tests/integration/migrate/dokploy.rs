//! The Dokploy path: the rendered compose file's one-off `migrate` service reaches the same
//! state as `stackctl migrate --database-url`.

use std::process::Command;

use super::{migrate, platform_count, stack, status_json};
use crate::support::{Postgres, bin};

/// A compose project started by a test, taken down with its volumes when dropped; and the image
/// the test built for it.
struct ComposeProject {
    project: String,
    file: std::path::PathBuf,
    image: String,
}

impl ComposeProject {
    fn cmd(&self) -> Command {
        let mut c = crate::support::compose_v2();
        c.arg("-p").arg(&self.project).arg("-f").arg(&self.file);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("docker compose");
        assert!(
            out.status.success(),
            "docker compose {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["down", "--volumes", "--remove-orphans"])
            .output();
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.image])
            .output();
    }
}

/// Builds the stackctl image from the binary under test, as `stackctl build stackctl` does
/// (stack/stackctl/Dockerfile + the host-built binary).
fn build_stackctl_image(tag: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stack/stackctl/Dockerfile"),
        ctx.path().join("Dockerfile"),
    )
    .unwrap();
    std::fs::copy(bin(), ctx.path().join("stackctl")).unwrap();
    let out = Command::new("docker")
        .args([
            "build",
            "-q",
            "--network",
            "host",
            "--build-arg",
            "BASE=debian:trixie-slim",
            "-t",
            tag,
        ])
        .arg(ctx.path())
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "building {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything about the managed roles that migrate sets: attributes, memberships with their
/// options, SCRAM verifiers; and the ACLs of the schemas and default privileges.
const ROLE_STATE_SQL: &str = "
    SELECT format('%s login=%s inherit=%s createrole=%s super=%s member_of=[%s] pw=%s',
                  r.rolname, r.rolcanlogin, r.rolinherit, r.rolcreaterole, r.rolsuper,
                  coalesce((SELECT string_agg(g.rolname || '/' || m.inherit_option || '/' || m.set_option, ',' ORDER BY g.rolname)
                              FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), ''),
                  coalesce(a.rolpassword, '-'))
      FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid
     WHERE r.rolname !~ '^pg_' AND r.rolname <> 'postgres'
    UNION ALL
    SELECT format('schema %s owner=%s acl=%s', nspname, nspowner::regrole, coalesce(nspacl::text, ''))
      FROM pg_namespace WHERE nspname IN ('public', 'postgate', 'runner', 'stackctl', 'shop')
    UNION ALL
    SELECT format('default acl %s %s %s', defaclrole::regrole, defaclobjtype, defaclacl::text) FROM pg_default_acl
    ORDER BY 1";

/// `migrate status --json` without what differs between runs (times, paths, the server's name).
fn comparable(status: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for set in ["platform", "app"] {
        for e in status[set].as_array().unwrap() {
            out.push(format!(
                "{set} V{} {} {} {}",
                e["version"], e["name"], e["state"], e["checksum"]
            ));
        }
    }
    out
}

#[test]
fn dokploy_migrate_service_reaches_the_same_state_as_migrate_with_a_url() {
    crate::support::require_docker();
    crate::support::postgres_image();
    let s = stack();
    let project = format!("stackctl-test-dokploy-{}", std::process::id());
    let image = format!("stackctl/stackctl:test-{}", std::process::id());
    let toml = s.read("stack.toml");
    let toml: String = toml
        .lines()
        .map(|l| {
            if l.starts_with("stackctl = ") {
                format!("stackctl = \"{image}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    s.write("stack.toml", &format!("{toml}\n"));
    s.write(
        "db/migrations/V1__shop.sql",
        "create schema shop;\ncreate table shop.items (id serial primary key, name text);\n",
    );
    s.write(
        "db/migrations/V2__seed.sql",
        "insert into shop.items (name) values ('a');\n",
    );
    s.cmd(["render", "--target", "dokploy"]).run().success();
    // Dokploy writes the .env beside the compose file; the migrate container (uid 10001) reads
    // the bind-mounted migrations, so the test's private temp dir must be readable.
    std::fs::copy(s.file(".env"), s.file("dokploy/code/.env")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exists = Command::new("docker")
        .args(["network", "inspect", "dokploy-network"])
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        // Dokploy's own network (external in the compose file); made once on a test machine.
        let _ = Command::new("docker")
            .args(["network", "create", "dokploy-network"])
            .output();
    }
    build_stackctl_image(&image);
    let compose = ComposeProject {
        project,
        file: s.file("dokploy/code/docker-compose.yml"),
        image,
    };

    // What Dokploy does, limited to the database part: postgres, then the one-off migrate job.
    compose.run(&["up", "-d", "migrate"]);
    // The job's container state, polled with a deadline (`docker compose wait` reports it in
    // words that vary between versions).
    let container = format!("{}-migrate-1", compose.project);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let state = loop {
        let out = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                &container,
            ])
            .output()
            .unwrap();
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if state.starts_with("exited") || std::time::Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let logs = compose.run(&["logs", "migrate"]);
    assert_eq!(state, "exited 0", "migrate job failed:\n{logs}");
    assert!(
        logs.contains(&format!(
            "applied {} platform and 2 app migrations",
            platform_count()
        )),
        "{logs}"
    );
    let dokploy_status: serde_json::Value = serde_json::from_str(&compose.run(&[
        "run",
        "--rm",
        "--no-deps",
        "migrate",
        "migrate",
        "status",
        "--json",
        "--from-env",
    ]))
    .unwrap();
    let dokploy_roles = compose.run(&[
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        "postgres",
        "-d",
        "app",
        "-XAtc",
        ROLE_STATE_SQL,
    ]);

    // The same stack directory migrated with --database-url into a fresh server.
    let pg = Postgres::start();
    migrate(&s, &pg).success();
    let url_status = status_json(&s, &pg);
    let url_roles = pg.db().strings(ROLE_STATE_SQL);

    assert_eq!(comparable(&dokploy_status), comparable(&url_status));
    assert_eq!(comparable(&url_status).len(), platform_count() + 2);
    assert_eq!(
        dokploy_roles
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
        url_roles
    );
    assert!(
        url_roles
            .iter()
            .any(|l| l.starts_with("db_authenticator login=t inherit=f")),
        "{url_roles:?}"
    );
}
