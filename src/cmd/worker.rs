//! `stackctl worker deploy|list|rm|logs`: the runner's workers, through its admin CLI in a
//! running runner container (`crate::workers`). A deploy's flags become one `Manifest`
//! (`protocol::manifest`), with secret values from the environment or stdin.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use protocol::manifest::{DbBinding, Deployed, Limits, Manifest};

use crate::cli::{DeployArgs, WorkerAction, WorkerArgs};
use crate::ctx::Ctx;
use crate::error::UserError;
use crate::workers;

pub fn run(ctx: &Ctx, a: WorkerArgs) -> Result<()> {
    let stack = ctx.stack()?;
    match a.action {
        WorkerAction::Deploy(d) => {
            let manifest = manifest(&d, &mut std::io::stdin().lock())?;
            let out = runner_admin(ctx, &["worker", "deploy"], Some(manifest))?;
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
            print!("{}", runner_admin(ctx, &args, None)?);
            Ok(())
        }
        WorkerAction::Rm { name } => {
            print!("{}", runner_admin(ctx, &["worker", "rm", &name], None)?);
            Ok(())
        }
        WorkerAction::Logs { name, follow, tail } => ctx.block_on(async {
            workers::logs(ctx.docker().await?, stack.project(), &name, follow, &tail).await
        }),
    }
}

/// `runner ARGS` in a running runner container: its stdout (see `workers::admin`).
pub fn runner_admin(ctx: &Ctx, args: &[&str], stdin: Option<Vec<u8>>) -> Result<String> {
    let project = ctx.stack()?.project();
    ctx.block_on(async { workers::admin(ctx.docker().await?, project, args, stdin).await })
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
    let mut workflows = BTreeMap::new();
    for kv in &d.workflow {
        let ok = |s: &str, first: fn(char) -> bool| {
            s.chars().next().is_some_and(first)
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && s.len() <= 128
        };
        match kv.split_once('=') {
            Some((b, c))
                if ok(b, |c| c.is_ascii_alphabetic() || c == '_')
                    && ok(c, |c| c.is_ascii_alphabetic() || c == '_') =>
            {
                workflows.insert(b.to_string(), c.to_string());
            }
            _ => bail!(
                UserError::new(format!("--workflow {kv:?} is not BINDING=ClassName"))
                    .hint("write it as --workflow CHECKOUT=Checkout (letters, digits and '_')")
            ),
        }
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
        workflows,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::{Value, json};

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
    fn workflow_bindings_go_in_the_manifest_and_bad_ones_are_refused() {
        let d = deploy_args(&["--workflow", "CHECKOUT=Checkout", "--workflow", "B=Other_1"]);
        let m = manifest(&d, &mut std::io::Cursor::new(Vec::new())).unwrap();
        let v: Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(
            v["workflows"],
            json!({"CHECKOUT": "Checkout", "B": "Other_1"})
        );
        let none = manifest(&deploy_args(&[]), &mut std::io::Cursor::new(Vec::new())).unwrap();
        let v: Value = serde_json::from_slice(&none).unwrap();
        assert!(v.get("workflows").is_none(), "left out when empty: {v}");
        for bad in ["CHECKOUT", "=Checkout", "B=1Class", "B-X=C"] {
            let d = deploy_args(&["--workflow", bad]);
            let e = manifest(&d, &mut std::io::Cursor::new(Vec::new())).unwrap_err();
            assert!(e.to_string().contains("BINDING=ClassName"), "{bad}: {e}");
        }
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
    fn a_limit_past_what_the_runner_stores_is_refused_naming_the_flag() {
        let d = deploy_args(&["--cpu-ms", "3000000000"]);
        let e = manifest(&d, &mut std::io::Cursor::new(Vec::new())).unwrap_err();
        assert!(
            e.to_string().contains("--cpu-ms 3000000000 is too large"),
            "{e}"
        );
        assert_eq!(
            crate::error::hint_of(&e),
            Some(format!("give at most {}", i32::MAX).as_str())
        );
    }
}
