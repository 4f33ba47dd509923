//! A small fluent helper for running `stackctl` in a temporary stack directory, in the style of
//! just's `tests/test.rs`: `Stackctl::new().args(["init"]).run().success()`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::files::{Snapshot, parse_env, snapshot};
use super::free_port;

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
        Self {
            dir: tempfile::Builder::new()
                .prefix("stackctl-test-")
                .tempdir()
                .expect("temp dir"),
        }
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

    /// Starts a command the way a user in the stack directory types it: `cd <tmp> && stackctl
    /// ARGS...`, with no `--dir` (so the default `.` applies).
    pub fn cmd_inside<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(bin());
        c.current_dir(self.path()).args(args);
        Run { cmd: c }
    }
}

/// A command about to run.
pub struct Run {
    pub cmd: Command,
}

impl Run {
    /// More arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.cmd.args(args);
        self
    }

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
        format!(
            "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.out.status.code(),
            self.stdout(),
            self.stderr()
        )
    }

    pub fn success(self) -> Self {
        assert!(
            self.out.status.success(),
            "expected success\n{}",
            self.show()
        );
        self
    }

    pub fn failure(self) -> Self {
        assert!(
            !self.out.status.success(),
            "expected failure\n{}",
            self.show()
        );
        self
    }

    pub fn stdout_contains(self, s: &str) -> Self {
        assert!(
            self.stdout().contains(s),
            "stdout lacks {s:?}\n{}",
            self.show()
        );
        self
    }

    pub fn stderr_contains(self, s: &str) -> Self {
        assert!(
            self.stderr().contains(s),
            "stderr lacks {s:?}\n{}",
            self.show()
        );
        self
    }
}

impl Stackctl {
    /// Every value of the stack's `.env` (`KEY=value` lines; comments and blanks skipped).
    pub fn env_values(&self) -> std::collections::BTreeMap<String, String> {
        parse_env(&self.read(".env"))
    }

    /// Parses a YAML file of the stack directory.
    pub fn yaml(&self, rel: &str) -> serde_yaml::Value {
        serde_yaml::from_str(&self.read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
    }

    /// Replaces `from` by `to` in a file of the stack directory; panics when `from` is absent, so a
    /// test never edits nothing by accident.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} lacks {from:?}");
        std::fs::write(self.file(rel), text.replacen(from, to, 1)).unwrap();
    }

    /// Every entry under the stack directory, with its mode and bytes.
    pub fn snapshot(&self) -> Snapshot {
        snapshot(self.path())
    }
}

/// The `[ports]` `init` writes into stack.toml, with their defaults.
const INIT_PORTS: [(&str, u16); 5] = [
    ("postgres", 5432),
    ("pooler", 6432),
    ("postgate", 8080),
    ("grafana", 3000),
    ("prometheus", 9090),
];

impl Stackctl {
    /// Moves these `[ports]` of stack.toml from `init`'s defaults to ports free right now, so the
    /// stacks of tests running at once do not collide; returns them in the order named.
    pub fn free_ports<const N: usize>(&self, names: [&str; N]) -> [u16; N] {
        names.map(|name| {
            let (_, default) = INIT_PORTS
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("init writes no port {name}"));
            let port = free_port();
            self.edit(
                "stack.toml",
                &format!("{name} = {default}"),
                &format!("{name} = {port}"),
            );
            port
        })
    }

    /// `up` of the core services only (`--without observability --without apps --without
    /// backup`), as the scenarios that bring our real images up run it; `extra` follows
    /// (`--wait-timeout N`).
    pub fn up_core(&self, extra: &[&str]) -> Run {
        self.cmd([
            "up",
            "--without",
            "observability",
            "--without",
            "apps",
            "--without",
            "backup",
        ])
        .args(extra)
    }
}

/// `stackctl --dir DIR ARGS...` for a directory other than a `Stackctl`'s own.
pub fn stackctl_in<I, S>(dir: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(bin());
    c.arg("--dir").arg(dir).args(args);
    Run { cmd: c }
}

/// What [`interrupt_when`] saw.
pub struct Interrupted {
    pub out: Output,
    /// Everything the command wrote to stderr.
    pub stderr: String,
    /// The command's process id.
    pub pid: u32,
}

/// Runs `stackctl --dir DIR ARGS...` and sends it `signal` (`-INT`, `-KILL`) as soon as a line of
/// its stderr contains `needle`; panics if no line ever does. Returns once the process has ended.
pub fn interrupt_when(dir: &Path, args: &[&str], needle: &str, signal: &str) -> Interrupted {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = Command::new(bin())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting stackctl");
    let stderr = child.stderr.take().unwrap();
    let pid = child.id();
    let (wanted, signal) = (needle.to_string(), signal.to_string());
    let reader = std::thread::spawn(move || {
        let (mut seen, mut sent) = (String::new(), false);
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if !sent && line.contains(&wanted) {
                let ok = Command::new("kill")
                    .args([signal.as_str(), &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(ok.success());
                sent = true;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        (sent, seen)
    });
    let out = child.wait_with_output().unwrap();
    let (sent, stderr) = reader.join().unwrap();
    assert!(
        sent,
        "stackctl {args:?} never printed {needle:?}:\n{stderr}"
    );
    Interrupted { out, stderr, pid }
}
