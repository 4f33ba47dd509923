//! `stackctl restore --to TIMESTAMP | --latest | --set LABEL [--yes]`.

use std::time::Duration;

use anyhow::Result;

use crate::backup::{self, RestoreOptions, RestoreTarget};
use crate::cli::RestoreArgs;
use crate::ctx::Ctx;
use crate::stacklock;

pub fn run(ctx: &Ctx, a: RestoreArgs) -> Result<()> {
    let target = match (&a.to, &a.set) {
        (Some(t), _) => RestoreTarget::Time(backup::parse_time(t)?),
        (None, Some(label)) => RestoreTarget::Set(label.clone()),
        (None, None) => RestoreTarget::Latest,
    };
    let opts = RestoreOptions {
        target,
        yes: a.yes,
        wait_timeout: Duration::from_secs(a.wait_timeout),
    };
    let (stack, env) = (ctx.stack()?, ctx.env()?);
    let _lock = stacklock::acquire(&stack.dir, "restore", stacklock::Mode::Exclusive)?;
    let r =
        ctx.block_on(async { backup::restore(ctx.docker().await?, stack, env, &opts).await })?;
    // The restored database may predate migrations this stack has: bring it up to date.
    eprintln!("restore: running migrate");
    super::migrate::apply_in_stack(ctx)?;
    println!(
        "restored to {}; services running again: {} ({:.1}s)",
        r.target,
        r.services.join(", "),
        r.seconds
    );
    Ok(())
}
