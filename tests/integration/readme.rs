//! The README's two commands are what CI runs: the set-up command and the test command, each
//! exactly as written, from `.ci/run` (issue 15: the set-up command once failed on a fresh
//! machine because nothing ran it).

use std::path::Path;

/// The shell lines of the fenced `sh` blocks in the README's "Set up" section.
fn setup_section_commands(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Set up"))
        .expect("the README has a `## Set up` section");
    let mut commands = Vec::new();
    let mut inside = false;
    for line in section.lines() {
        match (inside, line.trim()) {
            (false, "```sh") => inside = true,
            (true, "```") => inside = false,
            (true, l) if !l.is_empty() => commands.push(l.to_string()),
            _ => {}
        }
    }
    commands
}

#[test]
fn ci_runs_the_readme_set_up_and_test_commands_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let ci = std::fs::read_to_string(root.join(".ci/run")).expect(".ci/run");
    let commands = setup_section_commands(&readme);
    assert_eq!(
        commands.len(),
        2,
        "the Set up section holds two commands (set-up, tests): {commands:?}"
    );
    let ci_lines: Vec<&str> = ci.lines().map(str::trim).collect();
    for c in &commands {
        assert!(
            ci_lines
                .iter()
                .any(|l| *l == c || l.strip_prefix("exec ") == Some(c)),
            "`.ci/run` does not run the README's command `{c}` as written:\n{ci}"
        );
    }
    // The set-up command comes first: a stack up from a fresh clone, before the tests.
    let at = |c: &str| ci.find(c).expect("found above");
    assert!(at(&commands[0]) < at(&commands[1]), "{ci}");
    // And the set-up installs the build prerequisite that once stopped it (pg_query's libclang).
    let setup = std::fs::read_to_string(root.join("scripts/setup.sh")).expect("scripts/setup.sh");
    assert!(setup.contains("libclang-dev"), "scripts/setup.sh");
}
