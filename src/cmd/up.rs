//! `stackctl up`: render (or read `-f FILE`), then converge the stack and wait until it is ready.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::backup;
use crate::cli::UpArgs;
use crate::ctx::Ctx;
use crate::engine::{self, UpOptions};
use crate::swarm;

pub fn run(ctx: &Ctx, a: UpArgs) -> Result<()> {
    let stack = ctx.stack()?;
    if a.swarm {
        let within = Duration::from_secs(a.wait_timeout);
        let done = ctx
            .block_on(async { swarm::up(ctx.docker().await?, stack, ctx.env()?, within).await })?;
        println!("{}", swarm::report(&done.services));
        println!(
            "stack {} is up on the Swarm: {} services converged in {:.1}s ({})",
            stack.project(),
            done.services.len(),
            done.seconds,
            done.file.display()
        );
        return Ok(());
    }
    let project = engine::load_project(stack, ctx.env()?, a.file.as_deref())?;
    let opts = UpOptions {
        only: a.services,
        without: a.without,
        wait_timeout: Duration::from_secs(a.wait_timeout),
    };
    let started = Instant::now();
    let selected = project.select(&opts.only, &opts.without)?;
    // The repository needs its stanza before WAL archiving succeeds (idempotent), when the
    // postgres service archives with pgBackRest (every rendered stack; maybe not a -f file).
    let archives = selected.iter().any(|s| s == "postgres")
        && project.file.services["postgres"]
            .configs
            .iter()
            .any(|c| c.target.as_deref() == Some(backup::CONFIG_PATH));
    ctx.block_on(async {
        let docker = ctx.docker().await?;
        engine::up(docker, stack, &project, &opts).await?;
        if archives {
            backup::ensure_stanza(docker, stack).await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let n = selected.len();
    println!(
        "project {} is up: {n} services ready in {:.1}s (`stackctl status` for ports)",
        project.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
