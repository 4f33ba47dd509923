//! A small fluent helper for running `stackctl` in a temporary stack directory, in the style of
//! just's `tests/test.rs`: `Stackctl::new().args(["init"]).run().success()`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The stackctl binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stackctl"))
}

/// A temporary stack directory and a way to run stackctl in it.
pub struct Stackctl {
    pub dir: tempfile::TempDir,
}

impl Default for Stackctl {
    fn default() -> Self {
        Self::new()
    }
}

impl Stackctl {
    pub fn new() -> Self {
        Self { dir: tempfile::Builder::new().prefix("stackctl-test-").tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.file(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.file(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Starts a command: `stackctl --dir <tmp> ARGS...`.
    pub fn cmd<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(bin());
        c.arg("--dir").arg(self.path()).args(args);
        Run { cmd: c }
    }
}

/// A command about to run.
pub struct Run {
    pub cmd: Command,
}

impl Run {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn run(mut self) -> Done {
        let out = self.cmd.output().expect("running stackctl");
        Done { out }
    }
}

/// A finished command, with assertions that print its output when they fail.
pub struct Done {
    pub out: Output,
}

impl Done {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn show(&self) -> String {
        format!("exit: {:?}\n--- stdout\n{}\n--- stderr\n{}", self.out.status.code(), self.stdout(), self.stderr())
    }

    pub fn success(self) -> Self {
        assert!(self.out.status.success(), "expected success\n{}", self.show());
        self
    }

    pub fn failure(self) -> Self {
        assert!(!self.out.status.success(), "expected failure\n{}", self.show());
        self
    }

    pub fn stdout_contains(self, s: &str) -> Self {
        assert!(self.stdout().contains(s), "stdout lacks {s:?}\n{}", self.show());
        self
    }

    pub fn stderr_contains(self, s: &str) -> Self {
        assert!(self.stderr().contains(s), "stderr lacks {s:?}\n{}", self.show());
        self
    }
}

/// Fails the test loudly when the Docker Engine cannot be reached: tests that need Docker never
/// pass by skipping.
pub fn require_docker() {
    let ok = Command::new("docker").arg("info").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "this test needs a running Docker Engine (`docker info` failed); see README, section Tests");
}

/// `docker compose` v2 (installed by scripts/compose-v2.sh), or panics with how to get it.
pub fn compose_v2() -> Command {
    let ok = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(" 2."))
        .unwrap_or(false);
    assert!(ok, "this test needs Docker Compose v2 as `docker compose`: run scripts/compose-v2.sh");
    let mut c = Command::new("docker");
    c.arg("compose");
    c
}

/// Mode bits of a file.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}
