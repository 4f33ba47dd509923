//! Shell completions and the man page come from the same clap definitions as the parser: every
//! command appears in them, and they need no stack directory.

use std::process::Command;

use crate::support::bin;

fn stackctl_out(args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("running stackctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const COMMANDS: &[&str] = &[
    "init",
    "render",
    "up",
    "down",
    "status",
    "logs",
    "build",
    "migrate",
    "backup",
    "restore",
    "worker",
    "queue",
    "import-supabase",
    "tenant",
    "token",
    "publish",
    "completions",
];

#[test]
fn completions_for_each_shell_name_every_command() {
    for (shell, mark) in [
        ("bash", "_stackctl()"),
        ("zsh", "#compdef stackctl"),
        ("fish", "complete -c stackctl"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (ok, out, err) = stackctl_out(&["completions", shell]);
        assert!(ok, "completions {shell}: {err}");
        assert!(out.contains(mark), "{shell}: no `{mark}` in:\n{out}");
        for c in COMMANDS {
            assert!(out.contains(c), "{shell} completion lacks `{c}`");
        }
        assert!(err.is_empty(), "{shell}: stderr {err}");
    }
    let (ok, _, err) = stackctl_out(&["completions", "tcsh"]);
    assert!(!ok, "an unknown shell is refused");
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");
}

#[test]
fn man_page_is_roff_with_every_command() {
    let (ok, out, err) = stackctl_out(&["man"]);
    assert!(ok, "{err}");
    assert!(out.contains(".TH stackctl 1"), "{out}");
    // roff writes a hyphen as `\-`.
    let text = out.replace("\\-", "-");
    for c in COMMANDS {
        assert!(text.contains(c), "the man page lacks `{c}`");
    }
}
