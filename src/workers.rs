//! The runner's admin commands (`worker deploy|list|rm|logs`, `queue stats|retry-dead`), run
//! inside a running runner container through the engine facade.
//!
//! Why exec and not a database connection from the host: the runner container already holds
//! what these commands need (its `runner` login, the postgate token pepper, the secrets key),
//! so nothing secret has to reach the host's command line and no database port has to be
//! published (the same works on a Dokploy host). A deploy sends one JSON manifest on the exec's
//! stdin (source, vars, secrets, limits): secret values never appear in argv or in an
//! environment that `docker inspect` shows. `worker logs` reads the runner replicas' container
//! logs and keeps the JSON lines whose `worker` field names the worker.

use std::time::Duration;

use anyhow::{Result, bail};
use protocol::exit::AdminExit;
use serde_json::Value;

use crate::engine::{self, Docker, LogView};
use crate::error::UserError;

const SERVICE: &str = "runner";
/// Longest an admin command may take (a deploy that makes a tenant does DDL).
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Run `runner ARGS` in a running runner container; its stdout, or its stderr as the error.
pub async fn admin(
    docker: &Docker,
    project: &str,
    args: &[&str],
    stdin: Option<Vec<u8>>,
) -> Result<String> {
    let mut cmd = vec!["runner".to_string()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let what = format!("runner {}", args.join(" "));
    let container = engine::running_container(docker, project, SERVICE).await?;
    let out = docker
        .exec_capture(&container, cmd, stdin, EXEC_TIMEOUT)
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stderr = stderr
        .strip_prefix("error: ")
        .unwrap_or(&stderr)
        .to_string();
    match out.code {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        // The input was refused, or no such worker: the user's to fix.
        Some(code) if AdminExit::from_code(code).is_some() => {
            bail!(UserError::new(stderr).hint("nothing was changed"))
        }
        code => bail!(
            UserError::new(format!(
                "`{what}` failed in {container} (exit code {})",
                code.map(|c| c.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ))
            .hint(if stderr.is_empty() {
                "see `stackctl logs runner`".to_string()
            } else {
                stderr
            })
        ),
    }
}

/// Is `line` a JSON log line of worker `name`?
fn is_worker_line(line: &str, name: &str) -> bool {
    line.starts_with('{')
        && serde_json::from_str::<Value>(line)
            .is_ok_and(|v| v.get("worker").and_then(Value::as_str) == Some(name))
}

/// `worker logs`: the JSON lines of worker `name` from every runner replica's log.
pub async fn logs(
    docker: &Docker,
    project: &str,
    name: &str,
    follow: bool,
    tail: &str,
) -> Result<()> {
    let keep = |line: &str| is_worker_line(line, name);
    let view = LogView {
        follow,
        tail,
        keep: &keep,
        prefix: false,
    };
    engine::logs_where(docker, project, &[SERVICE.to_string()], &view).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines() {
        assert!(is_worker_line(r#"{"worker":"a","msg":"x"}"#, "a"));
        assert!(!is_worker_line(r#"{"worker":"b"}"#, "a"));
        assert!(!is_worker_line("plain text a", "a"));
    }
}
