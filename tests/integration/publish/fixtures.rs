//! What the publish scenarios share: a stack project with free ports, a guard that removes the
//! images a test tagged, image questions, and ways to run `publish` (more arguments, stdin,
//! `--json` read back).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{Done, Run, Stackctl, docker, require_docker};

/// Removes these local image tags when dropped, and the `repo@digest` references pushes and
/// pulls left for their repositories (untagging only: never by id, never forced).
pub(super) struct Images(pub(super) Vec<String>);

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

pub(super) fn image_id(r: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", r])
}

/// Runs with `input` on stdin.
pub(super) fn run_with_stdin(mut run: Run, input: &str) -> Done {
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
pub(super) struct Project {
    pub(super) s: Stackctl,
}

impl Project {
    pub(super) fn new(name: &str) -> Project {
        require_docker();
        let s = Stackctl::new();
        let project = format!("pub{name}{}", std::process::id());
        s.cmd(["init", "--pooler", "pgbouncer", "--project", &project])
            .run()
            .success();
        s.free_ports(["postgres", "pooler"]);
        Project { s }
    }

    /// Sets `[images] name = reference`.
    pub(super) fn set_image(&self, name: &str, reference: &str) {
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

    /// `publish --registry REGISTRY ARGS...` in this project.
    pub(super) fn publish(&self, registry: &str, args: &[&str]) -> Run {
        self.s.cmd(["publish", "--registry", registry]).args(args)
    }

    /// `[images] name` as stack.toml holds it.
    pub(super) fn image(&self, name: &str) -> String {
        let v: toml::Value = toml::from_str(&self.s.read("stack.toml")).unwrap();
        v["images"][name].as_str().unwrap().to_string()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self
            .s
            .cmd(["down", "--volumes", "--include-backups", "--yes"])
            .run();
    }
}

pub(super) fn json(done: &Done) -> serde_json::Value {
    serde_json::from_str(done.stdout().trim())
        .unwrap_or_else(|e| panic!("publish --json is not JSON ({e}):\n{}", done.stdout()))
}
