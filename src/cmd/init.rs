//! `stackctl init`: create or complete the stack directory (see `crate::init`).

use anyhow::Result;

use crate::cli::InitArgs;
use crate::ctx::Ctx;
use crate::init::{self, InitOptions};

pub fn run(ctx: &Ctx, a: InitArgs) -> Result<()> {
    init::run(
        ctx.dir(),
        &InitOptions {
            project: a.project,
            domain: a.domain,
            pooler: a.pooler,
            rotate: a.rotate,
            invalidate_tokens: a.invalidate_tokens,
        },
    )
}
