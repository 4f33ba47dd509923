//! `stackctl tenant create|list`: postgate's tenants, managed through its admin CLI in the stack.

use anyhow::Result;

use crate::cli::TenantArgs;
use crate::ctx::Ctx;
use crate::tenants;

pub fn run(ctx: &Ctx, a: TenantArgs) -> Result<()> {
    let (stack, env) = (ctx.stack()?, ctx.env()?);
    let args = a.action.to_args();
    ctx.block_on(async { tenants::admin(stack, env, ctx.docker().await?, args).await })
}
