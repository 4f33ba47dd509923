//! `stackctl migrate [status|new]`: straight against a database (`--database-url`, or
//! `--from-env` inside the migrate container), on the files alone (`new`), or else in the stack's
//! network through a one-off container of its `migrate` service with the same arguments.

use anyhow::{Result, bail};

use crate::cli::{MigrateAction, MigrateArgs};
use crate::ctx::Ctx;
use crate::db::{self, Action, Options, Source};
use crate::engine;
use crate::error::UserError;
use crate::stacklock;

pub fn run(ctx: &Ctx, a: MigrateArgs) -> Result<()> {
    let writes_a_file = matches!(a.action, Some(MigrateAction::New { .. }));
    // Applying (or rehearsing) migrations on the stack's database never overlaps a restore.
    // Inside the migrate container (`--from-env`) the stackctl that started it holds the lock.
    let _lock = match a.action {
        None if !a.from_env => Some(stacklock::acquire(
            &ctx.stack()?.dir,
            "migrate",
            stacklock::Mode::Shared,
        )?),
        _ => None,
    };
    if a.database_url.is_some() || a.from_env || writes_a_file {
        return direct(ctx, a);
    }
    in_stack(ctx, a)
}

/// `migrate` in the stack's network, as `restore` runs it once the services are back (the
/// caller holds the stack's lock).
pub(crate) fn apply_in_stack(ctx: &Ctx) -> Result<()> {
    in_stack(
        ctx,
        MigrateArgs {
            action: None,
            database_url: None,
            from_env: false,
            dry_run: false,
            lock_timeout: 10,
        },
    )
}

fn direct(ctx: &Ctx, a: MigrateArgs) -> Result<()> {
    let opts = Options {
        action: match a.action {
            Some(MigrateAction::New { name }) => Action::New { name },
            Some(MigrateAction::Status { json }) => Action::Status { json },
            None => Action::Apply { dry_run: a.dry_run },
        },
        lock_timeout: a.lock_timeout,
    };
    let source = if a.from_env {
        Source::Env
    } else {
        Source::Stack {
            stack: ctx.stack()?,
            env: ctx.env()?,
            database_url: a.database_url,
        }
    };
    ctx.block_on(db::run(source, &opts))
}

/// The same arguments passed on to the `migrate` service's container (`status [--json]`,
/// `--dry-run`, `--lock-timeout`), after what it depends on is up.
fn in_stack(ctx: &Ctx, a: MigrateArgs) -> Result<()> {
    let mut command: Vec<String> = vec![
        "migrate".into(),
        "--from-env".into(),
        "--lock-timeout".into(),
        a.lock_timeout.to_string(),
    ];
    if a.dry_run {
        command.push("--dry-run".into());
    }
    if let Some(MigrateAction::Status { json }) = &a.action {
        command.push("status".into());
        if *json {
            command.push("--json".into());
        }
    }
    let stack = ctx.stack()?;
    let project = engine::load_project(stack, ctx.env()?, None)?;
    let Some(svc) = project.file.services.get("migrate") else {
        bail!("the Compose file has no `migrate` service");
    };
    let deps: Vec<String> = svc.depends_on.keys().cloned().collect();
    let code = ctx.block_on(async {
        let docker = ctx.docker().await?;
        engine::run_once(docker, stack, &project, "migrate", &deps, command, &[]).await
    })?;
    if code != 0 {
        bail!(
            UserError::new(format!("the migrate container exited with code {code}"))
                .hint("its output is above")
        );
    }
    Ok(())
}
