//! `stackctl token create|list|revoke` and `stackctl gen-token`: postgate's tokens, managed
//! through its admin CLI in the stack. The token itself is the only thing on stdout.

use anyhow::Result;

use super::tenant::admin;
use crate::cli::{GenTokenArgs, TokenArgs};
use crate::ctx::Ctx;

pub fn run(ctx: &Ctx, a: TokenArgs) -> Result<()> {
    admin(ctx, a.action.to_args())
}

/// `stackctl gen-token TENANT NAME --permissions ...`: `token create` under another name.
pub fn run_gen_token(ctx: &Ctx, a: GenTokenArgs) -> Result<()> {
    admin(ctx, a.into_create().to_args())
}
