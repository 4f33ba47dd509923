//! `stackctl tenant create|list`: postgate's tenants, managed through its admin CLI in the stack.

use anyhow::Result;

use crate::cli::TenantArgs;
use crate::ctx::Ctx;
use crate::tenants;

pub fn run(ctx: &Ctx, a: TenantArgs) -> Result<()> {
    admin(ctx, a.action.to_args())
}

/// `postgate ARGS` once in the stack (`tenants::admin`); shared with `token` and `gen-token`.
pub(super) fn admin(ctx: &Ctx, args: Vec<String>) -> Result<()> {
    let (stack, env) = (ctx.stack()?, ctx.env()?);
    ctx.block_on(async { tenants::admin(stack, env, ctx.docker().await?, args).await })
}
