//! `stackctl build`: build the stack's own images (skipped when their inputs are unchanged).

use anyhow::Result;

use crate::cli::BuildArgs;
use crate::ctx::Ctx;
use crate::engine;

pub fn run(ctx: &Ctx, a: BuildArgs) -> Result<()> {
    let stack = ctx.stack()?;
    ctx.block_on(async {
        engine::build_all(ctx.docker().await?, stack, &a.services, &a.base).await
    })
}
