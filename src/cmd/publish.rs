//! `stackctl publish`: push our images to a registry and point stack.toml `[images]` at them.

use anyhow::Result;

use crate::cli::PublishArgs;
use crate::ctx::Ctx;
use crate::publish::{self, Options};

pub fn run(ctx: &Ctx, a: PublishArgs) -> Result<()> {
    let stack = ctx.stack()?;
    let opts = Options {
        images: a.images,
        registry: a.registry,
        tag: a.tag,
        force: a.force,
        username: a.username,
        password_stdin: a.password_stdin,
        json: a.json,
    };
    ctx.block_on(async { publish::run(stack, ctx.docker().await?, opts).await })
}
