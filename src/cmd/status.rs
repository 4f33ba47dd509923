//! `stackctl status`: each service's state, health, image, ports and uptime, then where Grafana
//! and Prometheus answer.

use anyhow::Result;

use crate::cli::StatusArgs;
use crate::ctx::Ctx;
use crate::engine;

pub fn run(ctx: &Ctx, a: StatusArgs) -> Result<()> {
    let stack = ctx.stack()?;
    let project = stack.project();
    ctx.block_on(async { engine::status(ctx.docker().await?, project, a.json).await })?;
    if !a.json {
        let endpoints = stack.observability_endpoints();
        if !endpoints.is_empty() {
            println!();
            for line in endpoints {
                println!("{line}");
            }
        }
    }
    Ok(())
}
