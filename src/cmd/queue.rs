//! `stackctl queue stats|retry-dead`: the runner's durable queue, through its admin CLI.

use anyhow::Result;

use crate::cli::QueueArgs;
use crate::ctx::Ctx;
use crate::workers;

pub fn run(ctx: &Ctx, a: QueueArgs) -> Result<()> {
    workers::run_queue(ctx.stack()?, a)
}
