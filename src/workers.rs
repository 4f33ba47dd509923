//! `stackctl worker deploy|list|rm|logs` and `stackctl queue stats|retry-dead`: the runner's
//! admin commands, run inside a running runner container through the engine facade.
//!
//! Why exec and not a database connection from the host: the runner container already holds
//! what these commands need (its `runner` login, the postgate token pepper, the secrets key),
//! so nothing secret has to reach the host's command line and no database port has to be
//! published (the same works on a Dokploy host). A deploy sends one JSON manifest on the exec's
//! stdin (source, vars, secrets, limits): secret values never appear in argv or in an
//! environment that `docker inspect` shows. `worker logs` reads the runner replicas' container
//! logs and keeps the JSON lines whose `worker` field names the worker.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protocol::exit::AdminExit;
use protocol::manifest::{DbBinding, Deployed, Limits, Manifest};
use serde_json::Value;

use crate::cli::{DeployArgs, QueueAction, QueueArgs, WorkerAction, WorkerArgs};
use crate::config::Stack;
use crate::engine::{self, Docker, LogView};
use crate::error::UserError;

const SERVICE: &str = "runner";
/// Longest an admin command may take (a deploy that makes a tenant does DDL).
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(stack: &Stack, a: WorkerArgs) -> Result<()> {
    match a.action {
        WorkerAction::Deploy(d) => {
            let manifest = manifest(&d, &mut std::io::stdin().lock())?;
            let out = admin(stack, &["worker", "deploy"], Some(manifest))?;
            let v: Deployed = serde_json::from_str(out.trim())
                .with_context(|| format!("the runner's answer is not JSON: {out}"))?;
            if v.unchanged {
                println!(
                    "worker {} is unchanged (version {}): the deployed version has the same source, settings and secrets; nothing was deployed",
                    d.name, v.version
                );
                return Ok(());
            }
            println!(
                "deployed worker {} version {}{}{}",
                d.name,
                v.version,
                if v.secrets.is_empty() {
                    String::new()
                } else {
                    format!(" (secrets: {})", v.secrets.join(", "))
                },
                match v.db_token_created {
                    Some(true) => format!(
                        "; env.DB on tenant {} with a new token",
                        d.db_tenant.as_deref().unwrap_or("")
                    ),
                    Some(false) => format!(
                        "; env.DB on tenant {}",
                        d.db_tenant.as_deref().unwrap_or("")
                    ),
                    None => String::new(),
                }
            );
            println!(
                "it answers at http://{}.{}/ on the runner",
                d.name, stack.hosts.workers
            );
            Ok(())
        }
        WorkerAction::List { json } => {
            let mut args = vec!["worker", "list"];
            if json {
                args.push("--json");
            }
            print!("{}", admin(stack, &args, None)?);
            Ok(())
        }
        WorkerAction::Rm { name } => {
            print!("{}", admin(stack, &["worker", "rm", &name], None)?);
            Ok(())
        }
        WorkerAction::Logs { name, follow, tail } => logs(stack, &name, follow, &tail),
    }
}

pub fn run_queue(stack: &Stack, a: QueueArgs) -> Result<()> {
    let out = match &a.action {
        QueueAction::Stats { json } => {
            let mut args = vec!["queue", "stats"];
            if *json {
                args.push("--json");
            }
            admin(stack, &args, None)?
        }
        QueueAction::RetryDead { queue } => {
            let mut args = vec!["queue", "retry-dead"];
            if let Some(q) = queue {
                args.extend(["--queue", q.as_str()]);
            }
            admin(stack, &args, None)?
        }
    };
    print!("{out}");
    Ok(())
}

/// The JSON manifest of a deploy (one line), with secret values from the environment or stdin.
fn manifest(d: &DeployArgs, stdin: &mut dyn BufRead) -> Result<Vec<u8>> {
    let source = std::fs::read_to_string(&d.file).map_err(|e| {
        UserError::new(format!("cannot read {}: {e}", d.file.display()))
            .hint("give the path of the worker's JavaScript module")
    })?;
    let mut vars = BTreeMap::new();
    for kv in &d.var {
        let Some((k, v)) = kv.split_once('=') else {
            bail!(
                UserError::new(format!("--var {kv:?} is not K=V"))
                    .hint("write it as --var NAME=value")
            );
        };
        vars.insert(k.to_string(), v.to_string());
    }
    let mut secrets = BTreeMap::new();
    for k in &d.secret {
        let value = match std::env::var(k) {
            Ok(v) => v,
            Err(_) => {
                if std::io::stdin().is_terminal() {
                    eprint!("value of secret {k}: ");
                    let _ = std::io::stderr().flush();
                }
                let mut line = String::new();
                stdin
                    .read_line(&mut line)
                    .with_context(|| format!("reading secret {k} from stdin"))?;
                let v = line.trim_end_matches(['\r', '\n']).to_string();
                if v.is_empty() {
                    bail!(
                        UserError::new(format!("no value for secret {k}"))
                            .hint(format!("set the environment variable {k}, or pipe its value on stdin: `printf %s \"$VALUE\" | stackctl worker deploy ... --secret {k}`"))
                    );
                }
                v
            }
        };
        secrets.insert(k.clone(), value);
    }
    let db = d.db_tenant.as_ref().map(|t| DbBinding {
        tenant: t.clone(),
        permissions: d
            .db_permissions
            .split(',')
            .map(|p| p.trim().to_ascii_uppercase())
            .filter(|p| !p.is_empty())
            .collect(),
    });
    let m = Manifest {
        name: d.name.clone(),
        source,
        routes: d.route.clone(),
        queues: d.queue.clone(),
        cron: d.cron.clone(),
        timezone: Some(d.timezone.clone()),
        vars,
        secrets,
        limits: Limits {
            cpu_ms: limit("cpu-ms", d.cpu_ms)?,
            memory_mb: limit("memory-mb", d.memory_mb)?,
            wall_ms: limit("wall-ms", d.wall_ms)?,
            body_bytes: limit("max-body-bytes", d.max_body_bytes)?,
            concurrency: limit("concurrency", d.concurrency)?,
        },
        db,
    };
    Ok(m.to_line()?)
}

/// A limit flag as the manifest carries it (the runner stores limits as PostgreSQL `int`).
fn limit(flag: &str, value: Option<u32>) -> Result<Option<i32>> {
    let Some(v) = value else { return Ok(None) };
    match i32::try_from(v) {
        Ok(v) => Ok(Some(v)),
        Err(_) => bail!(
            UserError::new(format!("--{flag} {v} is too large"))
                .hint(format!("give at most {}", i32::MAX))
        ),
    }
}

/// Run `runner ARGS` in a running runner container; its stdout, or its stderr as the error.
fn admin(stack: &Stack, args: &[&str], stdin: Option<Vec<u8>>) -> Result<String> {
    let project = stack.project().to_string();
    let mut cmd = vec!["runner".to_string()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let what = format!("runner {}", args.join(" "));
    engine::runtime()?.block_on(async {
        let docker = Docker::connect().await?;
        let container = engine::running_container(&docker, &project, SERVICE).await?;
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
    })
}

/// Is `line` a JSON log line of worker `name`?
fn is_worker_line(line: &str, name: &str) -> bool {
    line.starts_with('{')
        && serde_json::from_str::<Value>(line)
            .is_ok_and(|v| v.get("worker").and_then(Value::as_str) == Some(name))
}

fn logs(stack: &Stack, name: &str, follow: bool, tail: &str) -> Result<()> {
    let project = stack.project().to_string();
    let keep = |line: &str| is_worker_line(line, name);
    let view = LogView {
        follow,
        tail,
        keep: &keep,
        prefix: false,
    };
    engine::runtime()?.block_on(async {
        let docker = Docker::connect().await?;
        engine::logs_where(&docker, &project, &[SERVICE.to_string()], &view).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    fn deploy_args(extra: &[&str]) -> DeployArgs {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            d: DeployArgs,
        }
        let mut argv = vec!["t", "hello", "Cargo.toml"];
        argv.extend_from_slice(extra);
        T::parse_from(argv).d
    }

    #[test]
    fn manifest_carries_vars_secrets_limits_and_db() {
        let d = deploy_args(&[
            "--var",
            "A=1=2",
            "--secret",
            "STACKCTL_TEST_NO_SUCH_VAR_X",
            "--db-tenant",
            "shop",
            "--db-permissions",
            "select,insert",
            "--cpu-ms",
            "20",
            "--route",
            "/api",
        ]);
        let mut stdin = std::io::Cursor::new(b"s3cret\n".to_vec());
        let m = manifest(&d, &mut stdin).unwrap();
        let v: Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["vars"]["A"], "1=2");
        assert_eq!(v["secrets"]["STACKCTL_TEST_NO_SUCH_VAR_X"], "s3cret");
        assert_eq!(v["db"]["permissions"], json!(["SELECT", "INSERT"]));
        assert_eq!(v["limits"]["cpu_ms"], 20);
        assert_eq!(v["limits"]["wall_ms"], Value::Null);
        assert_eq!(v["routes"], json!(["/api"]));
        assert_eq!(m.iter().filter(|b| **b == b'\n').count(), 1, "one line");
    }

    #[test]
    fn bad_var_and_missing_secret_are_user_errors() {
        let d = deploy_args(&["--var", "novalue"]);
        let e = manifest(&d, &mut std::io::Cursor::new(Vec::new())).unwrap_err();
        assert!(e.to_string().contains("not K=V"), "{e}");
        let d = deploy_args(&["--secret", "STACKCTL_TEST_NO_SUCH_VAR_Y"]);
        let e = manifest(&d, &mut std::io::Cursor::new(Vec::new())).unwrap_err();
        assert!(e.to_string().contains("no value for secret"), "{e}");
    }

    #[test]
    fn worker_lines() {
        assert!(is_worker_line(r#"{"worker":"a","msg":"x"}"#, "a"));
        assert!(!is_worker_line(r#"{"worker":"b"}"#, "a"));
        assert!(!is_worker_line("plain text a", "a"));
    }
}
