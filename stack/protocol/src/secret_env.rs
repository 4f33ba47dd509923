//! Secrets from the environment or from a file named by `NAME_FILE` (Docker Swarm mounts secrets
//! as files under `/run/secrets/`, and the Compose file points at them with `NAME_FILE`).
//!
//! One rule for every binary we ship: `NAME` set and non-empty wins; otherwise `NAME_FILE` names a
//! file whose contents (one trailing newline dropped) are the value. The official PostgreSQL
//! image's `POSTGRES_PASSWORD_FILE` follows the same convention, and so does our image's
//! entrypoint.

use std::path::PathBuf;

/// A `NAME_FILE` that names a file that cannot be read.
#[derive(Debug)]
pub struct FileEnvError {
    pub var: String,
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl std::fmt::Display for FileEnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}_FILE names {}, which cannot be read: {} (mount the secret there, or set {} instead)",
            self.var,
            self.path.display(),
            self.source,
            self.var
        )
    }
}

impl std::error::Error for FileEnvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `NAME`'s value from the process environment, or from the file `NAME_FILE` names.
pub fn var(name: &str) -> Result<Option<String>, FileEnvError> {
    lookup(name, |k| std::env::var(k).ok())
}

/// [`var`] over any environment (`get` returns a variable's value): testable without touching the
/// process environment.
pub fn lookup(
    name: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, FileEnvError> {
    if let Some(v) = get(name).filter(|v| !v.is_empty()) {
        return Ok(Some(v));
    }
    let Some(path) = get(&format!("{name}_FILE")).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            Ok(Some(text.to_string()))
        }
        Err(source) => Err(FileEnvError {
            var: name.to_string(),
            path,
            source,
        }),
    }
}

/// `cmd` with every argument read from an environment variable (`#[arg(env = "NAME")]`) also
/// readable from `NAME_FILE`, in every subcommand: where `NAME` is unset and `NAME_FILE` is set,
/// the file's contents become the argument's (hidden) default. A flag on the command line still
/// wins. Parse with `Cli::from_arg_matches(&with_file_env(Cli::command())?.get_matches())`.
pub fn with_file_env(cmd: clap::Command) -> Result<clap::Command, FileEnvError> {
    with_file_env_from(cmd, &|k| std::env::var(k).ok())
}

/// `P::parse()` with [`with_file_env`]: what our binaries' `main` calls. An unreadable
/// `NAME_FILE` ends the process with its error, like a bad flag does.
pub fn parse<P: clap::Parser>() -> P {
    let cmd = with_file_env(P::command()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let matches = cmd.get_matches();
    P::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut P::command()).exit())
}

fn with_file_env_from(
    mut cmd: clap::Command,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<clap::Command, FileEnvError> {
    let from_files: Vec<(clap::Id, String)> = cmd
        .get_arguments()
        .filter_map(|a| Some((a.get_id().clone(), a.get_env()?.to_str()?.to_string())))
        .filter(|(_, name)| get(name).is_none_or(|v| v.is_empty()))
        .map(|(id, name)| Ok(lookup(&name, get)?.map(|v| (id, v))))
        .collect::<Result<Vec<_>, FileEnvError>>()?
        .into_iter()
        .flatten()
        .collect();
    for (id, value) in from_files {
        cmd = cmd.mut_arg(id, |a| {
            a.default_value(clap::builder::Str::from(value))
                .hide_default_value(true)
                .required(false)
        });
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subs {
        let mut failed = None;
        cmd = cmd.mut_subcommand(&name, |s| match with_file_env_from(s.clone(), get) {
            Ok(s) => s,
            Err(e) => {
                failed = Some(e);
                s
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{FromArgMatches as _, Parser};
    use std::collections::HashMap;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Cmd {
        Serve {
            #[arg(long, env = "T_URL")]
            url: String,
            #[arg(long, env = "T_KEY")]
            key: Option<String>,
        },
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_variable_wins_then_the_file_then_nothing() {
        let dir = std::env::temp_dir().join(format!("secret-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let f = file.to_str().unwrap();
        let e = env(&[("A", "direct"), ("A_FILE", f), ("B_FILE", f), ("D", "")]);
        let get = |k: &str| e.get(k).cloned();
        assert_eq!(lookup("A", get).unwrap().as_deref(), Some("direct"));
        assert_eq!(lookup("B", get).unwrap().as_deref(), Some("s3cret"));
        assert_eq!(lookup("C", get).unwrap(), None);
        assert_eq!(lookup("D", get).unwrap(), None);
        let missing = env(&[("M_FILE", "/nonexistent/secret")]);
        let err = lookup("M", |k| missing.get(k).cloned()).unwrap_err();
        assert!(
            err.to_string().contains("M_FILE names /nonexistent/secret"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clap_arguments_read_name_file_in_subcommands_and_hide_the_value() {
        let dir = std::env::temp_dir().join(format!("secret-env-clap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("url");
        std::fs::write(&file, "postgres://u:pw@h/db\n").unwrap();
        let e = env(&[("T_URL_FILE", file.to_str().unwrap())]);
        let get = |k: &str| e.get(k).cloned();
        let cmd = with_file_env_from(<Cli as clap::CommandFactory>::command(), &get).unwrap();
        let m = cmd.clone().try_get_matches_from(["t", "serve"]).unwrap();
        let Cmd::Serve { url, key } = Cli::from_arg_matches(&m).unwrap().cmd;
        assert_eq!(url, "postgres://u:pw@h/db");
        assert_eq!(key, None);
        let mut cmd = cmd;
        let help = cmd
            .find_subcommand_mut("serve")
            .unwrap()
            .render_help()
            .to_string();
        assert!(!help.contains("pw@h"), "the secret shows in --help: {help}");
        // A flag still wins over the file.
        let m = cmd
            .try_get_matches_from(["t", "serve", "--url", "postgres://flag"])
            .unwrap();
        let Cmd::Serve { url, .. } = Cli::from_arg_matches(&m).unwrap().cmd;
        assert_eq!(url, "postgres://flag");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
