//! `stackctl down`: remove the stack's containers and networks; with `--volumes` its volumes
//! too, except the backup repository, which only `--include-backups --yes` removes.

use anyhow::{Result, bail};

use crate::backup;
use crate::cli::DownArgs;
use crate::ctx::Ctx;
use crate::engine::{self, Volumes};
use crate::error::UserError;

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
    let volumes = match (a.volumes, a.include_backups) {
        (false, _) => Volumes::Keep,
        (true, false) => Volumes::RemoveExcept(backup::VOLUME),
        (true, true) => Volumes::RemoveAll,
    };
    ctx.block_on(async { engine::down(ctx.docker().await?, project, volumes).await })
}
