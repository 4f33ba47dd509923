//! `stackctl db dump [--file F] [--schema S...]` and `stackctl db restore --file F [--clean --yes]`.

use anyhow::{Result, bail};

use crate::backup::{human_bytes, logical};
use crate::cli::{DbAction, DbArgs};
use crate::ctx::Ctx;
use crate::error::UserError;
use crate::stacklock;

pub fn run(ctx: &Ctx, a: DbArgs) -> Result<()> {
    let (stack, env) = (ctx.stack()?, ctx.env()?);
    match a.action {
        DbAction::Dump { file, schemas } => {
            let file = file.unwrap_or_else(|| logical::default_file(stack));
            let r = ctx.block_on(async {
                logical::dump(ctx.docker().await?, stack, env, &file, &schemas).await
            })?;
            println!(
                "dumped database {} to {} ({}, {:.1}s)",
                stack.file.postgres.database,
                r.file.display(),
                human_bytes(r.bytes),
                r.seconds
            );
        }
        DbAction::Restore { file, clean, yes } => {
            if clean && !yes {
                bail!(
                    UserError::new(format!(
                        "--clean drops every object of {} from database {} before recreating it; \
                         nothing was changed",
                        file.display(),
                        stack.file.postgres.database
                    ))
                    .hint("run the same command with --yes to do it")
                );
            }
            let _lock = stacklock::acquire(&stack.dir, "db restore", stacklock::Mode::Exclusive)?;
            let seconds = ctx.block_on(async {
                logical::restore(ctx.docker().await?, stack, env, &file, clean).await
            })?;
            println!(
                "restored {} into database {} ({seconds:.1}s)",
                file.display(),
                stack.file.postgres.database
            );
        }
    }
    Ok(())
}
