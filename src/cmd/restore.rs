//! `stackctl restore --to TIMESTAMP | --latest [--yes]`.

use std::time::Duration;

use anyhow::Result;

use crate::backup::{self, RestoreOptions, RestoreTarget};
use crate::cli::RestoreArgs;
use crate::ctx::Ctx;

pub fn run(ctx: &Ctx, a: RestoreArgs) -> Result<()> {
    let target = match &a.to {
        Some(t) => RestoreTarget::Time(backup::parse_time(t)?),
        None => RestoreTarget::Latest,
    };
    let opts = RestoreOptions {
        target,
        yes: a.yes,
        wait_timeout: Duration::from_secs(a.wait_timeout),
    };
    let (stack, env) = (ctx.stack()?, ctx.env()?);
    let r =
        ctx.block_on(async { backup::restore(ctx.docker().await?, stack, env, &opts).await })?;
    println!(
        "restored to {}; services running again: {} ({:.1}s)",
        r.target,
        r.services.join(", "),
        r.seconds
    );
    Ok(())
}
