//! `stackctl logs`: the services' logs, each line prefixed by its service.

use anyhow::Result;

use crate::cli::LogsArgs;
use crate::ctx::Ctx;
use crate::engine;

pub fn run(ctx: &Ctx, a: LogsArgs) -> Result<()> {
    let project = ctx.stack()?.project();
    ctx.block_on(async {
        engine::logs(ctx.docker().await?, project, &a.services, a.follow, &a.tail).await
    })
}
