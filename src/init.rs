//! `stackctl init`: create or complete a stack directory without ever losing a secret.
//!
//! Writes `stack.toml` (only when absent), `.env` (missing secrets only, or `--rotate`d ones),
//! TLS material, the pooler and observability config files, and `.gitignore` lines. Running it
//! twice changes nothing; it reports what it added.

use std::path::Path;

use anyhow::{Result, bail};

use crate::config::{PoolerKind, STACK_FILE, Stack, StackFile, check_domain};
use crate::error::UserError;
use crate::{files, render, secrets, tls};

/// Options of `stackctl init`.
#[derive(Debug, Default)]
pub struct InitOptions {
    pub project: Option<String>,
    pub domain: Option<String>,
    pub pooler: Option<PoolerKind>,
    pub rotate: Vec<String>,
    /// The user accepts that rotating the token pepper invalidates every postgate token.
    pub invalidate_tokens: bool,
}

const GITIGNORE_LINES: &[&str] = &[
    ".env",
    ".env.bak.*",
    "certs/*.key",
    "pgcat/pgcat.toml",
    "pgbouncer/userlist.txt",
    "dokploy/files/",
    "swarm/files/",
    ".stackctl.lock",
    "dumps/",
];

/// Runs `init` in `dir`; prints what it did.
pub fn run(dir: &Path, opts: &InitOptions) -> Result<()> {
    // Every check comes before the first write, so a refused `init` leaves the directory as it was.
    if let Some(d) = &opts.domain {
        check_domain("--domain", d)?;
    }
    if let Some(p) = &opts.project {
        let mut file = StackFile::default();
        file.project.name = p.clone();
        Stack::from_file(dir, file).map_err(|_| {
            UserError::new(format!(
                "--project `{p}` is not a valid Compose project name"
            ))
            .hint("use lowercase letters, digits, `-` and `_`, starting with a letter or digit")
        })?;
    }
    check_stack_dir(dir)?;
    check_existing_env(dir, opts)?;
    let stack_path = dir.join(STACK_FILE);
    let existing = if stack_path.exists() {
        Some(Stack::load(dir)?)
    } else {
        None
    };
    files::ensure_writable_dir(dir)?;
    let stack = if let Some(stack) = existing {
        let mut ignored = Vec::new();
        if opts
            .project
            .as_ref()
            .is_some_and(|p| *p != stack.file.project.name)
        {
            ignored.push("--project");
        }
        if opts
            .domain
            .as_ref()
            .is_some_and(|d| *d != stack.file.project.domain)
        {
            ignored.push("--domain");
        }
        if opts.pooler.is_some_and(|p| p != stack.file.pooler.kind) {
            ignored.push("--pooler");
        }
        if !ignored.is_empty() {
            eprintln!(
                "note: {STACK_FILE} exists and is kept; {} ignored (edit {STACK_FILE} to change them)",
                ignored.join(", ")
            );
        }
        stack
    } else {
        let mut file = StackFile::default();
        if let Some(p) = &opts.project {
            file.project.name = p.clone();
        }
        if let Some(d) = &opts.domain {
            file.project.domain = d.clone();
        }
        if let Some(k) = opts.pooler {
            file.pooler.kind = k;
        }
        let stack = Stack::from_file(dir, file)?;
        files::write_atomic(
            &stack_path,
            render::stack_toml(&stack)?.as_bytes(),
            files::PUBLIC,
        )?;
        println!("wrote {STACK_FILE}");
        stack
    };

    let env_path = stack.env_path();
    if opts.rotate.is_empty() {
        let report = secrets::ensure(&env_path)?;
        if report.created_file {
            println!("wrote .env (0600) with {} secrets", report.added.len());
        } else if report.added.is_empty() {
            println!(".env has every secret; nothing changed");
        } else {
            println!("added to .env: {}", report.added.join(", "));
        }
    } else {
        if !env_path.exists() {
            return Err(
                UserError::new(".env does not exist, so there is nothing to rotate")
                    .hint("run `stackctl init` first")
                    .into(),
            );
        }
        let rotated = secrets::rotate(&env_path, &opts.rotate)?;
        println!(
            "rotated {} (old .env kept as {})",
            opts.rotate.join(", "),
            rotated
                .backup
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        );
        for (key, previous) in &rotated.kept_previous {
            println!(
                "kept the old {key} in {previous}: `stackctl up runner` seals worker secrets again under the new key; then remove the {previous} line from .env"
            );
        }
        println!(
            "next: `stackctl migrate` (or `stackctl up`) sets the new passwords in PostgreSQL"
        );
    }

    let tls = tls::ensure(dir, stack.project())?;
    for f in &tls.written {
        println!("wrote {f}");
    }
    let env = stack.load_env()?;
    let configs = render::config_files(&stack, &env)?;
    for f in render::write_config_files(&stack, &configs)? {
        println!("wrote {f}");
    }
    ensure_gitignore(dir)?;
    Ok(())
}

/// Refuses a stack directory that is a file or lies under one (creating it would fail half-way).
fn check_stack_dir(dir: &Path) -> Result<()> {
    if let Some(file) = dir
        .ancestors()
        .find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()))
    {
        let msg = if file == dir {
            format!("{} is a file, not a directory", dir.display())
        } else {
            format!(
                "cannot create the stack directory {}: {} is a file, not a directory",
                dir.display(),
                file.display()
            )
        };
        bail!(UserError::new(msg).hint("choose another --dir"));
    }
    Ok(())
}

/// Refuses, before anything is written, an `.env` that cannot be parsed, holds an empty secret
/// (other than one being rotated), or is missing while `--rotate` asks to replace a secret.
fn check_existing_env(dir: &Path, opts: &InitOptions) -> Result<()> {
    for k in &opts.rotate {
        if secrets::spec(k).is_none() {
            let known: Vec<&str> = secrets::SECRETS.iter().map(|s| s.key).collect();
            bail!(
                UserError::new(format!("unknown secret `{k}`"))
                    .hint(format!("secrets are: {}", known.join(", ")))
            );
        }
    }
    if opts.rotate.iter().any(|k| k == "POSTGATE_TOKEN_PEPPER") && !opts.invalidate_tokens {
        bail!(
            UserError::new(
                "rotating POSTGATE_TOKEN_PEPPER makes every postgate token stop working (your applications' and the workers' env.DB), and postgate's tenant logins cannot connect until new tokens are made for them"
            )
            .hint(
                "if that is what you want: `stackctl init --rotate POSTGATE_TOKEN_PEPPER --invalidate-tokens`, `stackctl up`, then `stackctl token create` for each tenant (it also re-keys the tenant's login) and `stackctl worker deploy` again for workers with --db-tenant (they get new tokens)"
            )
        );
    }
    let path = dir.join(crate::config::ENV_FILE);
    if !opts.rotate.is_empty() && !path.exists() {
        bail!(
            UserError::new(".env does not exist, so there is nothing to rotate")
                .hint("run `stackctl init` first")
        );
    }
    let env = secrets::EnvFile::load(&path)?;
    for s in secrets::SECRETS {
        if env.get(s.key) == Some("") && !opts.rotate.iter().any(|k| k == s.key) {
            bail!(UserError::new(format!("{} holds an empty value for {} ({})", path.display(), s.key, s.what)).hint(format!(
                "remove the `{}=` line and run `stackctl init` to generate it, or `stackctl init --rotate {}`",
                s.key, s.key
            )));
        }
    }
    Ok(())
}

fn ensure_gitignore(dir: &Path) -> Result<()> {
    let path = dir.join(".gitignore");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let have: std::collections::HashSet<&str> = existing.lines().map(str::trim).collect();
    let missing: Vec<&str> = GITIGNORE_LINES
        .iter()
        .copied()
        .filter(|l| !have.contains(l))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut text = existing.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if existing.is_empty() {
        text.push_str("# Secrets of this stack (stackctl)\n");
    }
    for l in &missing {
        text.push_str(l);
        text.push('\n');
    }
    files::write_atomic(&path, text.as_bytes(), files::PUBLIC)?;
    println!("added to .gitignore: {}", missing.join(" "));
    Ok(())
}
