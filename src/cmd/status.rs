//! `stackctl status`: each service's state, health, image, ports and uptime; where Grafana and
//! Prometheus answer; then the backups: the newest backup and its age, when WAL was last
//! archived, and warnings when a backup is missing or late or archiving fails.

use anyhow::Result;

use crate::backup;
use crate::cli::StatusArgs;
use crate::ctx::Ctx;
use crate::engine;
use crate::swarm;

pub fn run(ctx: &Ctx, a: StatusArgs) -> Result<()> {
    let stack = ctx.stack()?;
    if a.swarm {
        let states =
            ctx.block_on(async { swarm::status(ctx.docker().await?, stack.project()).await })?;
        println!("{}", swarm::report(&states));
        return Ok(());
    }
    ctx.block_on(async {
        let docker = ctx.docker().await?;
        engine::status(docker, stack.project(), a.json).await?;
        if a.json {
            return Ok(());
        }
        let endpoints = stack.observability_endpoints();
        if !endpoints.is_empty() {
            println!();
            for line in endpoints {
                println!("{line}");
            }
        }
        match backup::freshness(docker, stack).await {
            Ok(Some(f)) => print_backups(&f),
            Ok(None) => {}
            Err(e) => println!("backups: unknown ({e:#})"),
        }
        Ok(())
    })
}

fn print_backups(f: &backup::Freshness) {
    let now = chrono::Utc::now();
    let newest = match &f.newest {
        Some(s) => format!(
            "newest {} ({}) finished {} ago",
            s.label,
            s.kind,
            backup::age(now - s.finished)
        ),
        None => "none yet".to_string(),
    };
    let archived = match f.last_archived {
        Some(t) => format!("WAL last archived {} ago", backup::age(now - t)),
        None => "no WAL archived yet".to_string(),
    };
    println!("backups: {newest}; {archived}");
    for w in &f.warnings {
        println!("warning: {w}");
    }
}
