//! `stackctl up`: render (or read `-f FILE`), then converge the stack and wait until it is ready.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cli::UpArgs;
use crate::ctx::Ctx;
use crate::engine::{self, UpOptions};

pub fn run(ctx: &Ctx, a: UpArgs) -> Result<()> {
    let stack = ctx.stack()?;
    let project = engine::load_project(stack, ctx.env()?, a.file.as_deref())?;
    let opts = UpOptions {
        only: a.services,
        without: a.without,
        wait_timeout: Duration::from_secs(a.wait_timeout),
    };
    let started = Instant::now();
    ctx.block_on(async { engine::up(ctx.docker().await?, stack, &project, &opts).await })?;
    let n = project.select(&opts.only, &opts.without)?.len();
    println!(
        "project {} is up: {n} services ready in {:.1}s (`stackctl status` for ports)",
        project.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
