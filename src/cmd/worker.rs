//! `stackctl worker deploy|list|rm|logs`: the runner's workers, through its admin CLI in a
//! running runner container.

use anyhow::Result;

use crate::cli::WorkerArgs;
use crate::ctx::Ctx;
use crate::workers;

pub fn run(ctx: &Ctx, a: WorkerArgs) -> Result<()> {
    workers::run(ctx.stack()?, a)
}
