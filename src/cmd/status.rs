//! `stackctl status`: each service's state, health, image, ports and uptime.

use anyhow::Result;

use crate::cli::StatusArgs;
use crate::ctx::Ctx;
use crate::engine;

pub fn run(ctx: &Ctx, a: StatusArgs) -> Result<()> {
    let project = ctx.stack()?.project();
    ctx.block_on(async { engine::status(ctx.docker().await?, project, a.json).await })
}
