//! `stackctl down`: remove the stack's containers and networks; with `--volumes` its volumes
//! too, except the backup repository, which only `--include-backups --yes` removes.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::backup;
use crate::cli::DownArgs;
use crate::ctx::Ctx;
use crate::engine::{self, Volumes};
use crate::error::UserError;
use crate::swarm;

/// The volumes of the swarm target (its stack file's top-level `volumes:`).
const SWARM_VOLUMES: &[&str] = &[
    "pgdata",
    "backups",
    "pgsocket",
    "loki-data",
    "alloy-data",
    "grafana-data",
    "prometheus-data",
];

pub fn run(ctx: &Ctx, a: DownArgs) -> Result<()> {
    let project = ctx.stack()?.project();
    if a.include_backups && !a.yes {
        bail!(
            UserError::new(format!(
                "--include-backups removes the backup repository of {project} (volume {}): every backup and archived WAL, the only way back after the data volume is gone",
                engine::volume_name(project, backup::VOLUME)
            ))
            .hint("add --yes to confirm; nothing was removed")
        );
    }
    if a.swarm {
        // What `docker stack deploy` made is labelled with the stack's name; volumes stay
        // unless asked, and the backup repository unless --include-backups --yes.
        let remove: Vec<&str> = match (a.volumes, a.include_backups) {
            (false, _) => vec![],
            (true, false) => SWARM_VOLUMES
                .iter()
                .copied()
                .filter(|v| *v != backup::VOLUME)
                .collect(),
            (true, true) => SWARM_VOLUMES.to_vec(),
        };
        let removed = ctx.block_on(async {
            swarm::down(
                ctx.docker().await?,
                project,
                &remove,
                Duration::from_secs(120),
            )
            .await
        })?;
        println!("stack {project} removed from the Swarm");
        for v in removed {
            println!("removed volume {v}");
        }
        return Ok(());
    }
    let volumes = match (a.volumes, a.include_backups) {
        (false, _) => Volumes::Keep,
        (true, false) => Volumes::RemoveExcept(backup::VOLUME),
        (true, true) => Volumes::RemoveAll,
    };
    ctx.block_on(async { engine::down(ctx.docker().await?, project, volumes).await })
}
