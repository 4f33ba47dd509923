//! `stackctl down`: remove the stack's containers and networks (its volumes only when asked).

use anyhow::Result;

use crate::cli::DownArgs;
use crate::ctx::Ctx;
use crate::engine;

pub fn run(ctx: &Ctx, a: DownArgs) -> Result<()> {
    let project = ctx.stack()?.project();
    ctx.block_on(async { engine::down(ctx.docker().await?, project, a.volumes).await })
}
