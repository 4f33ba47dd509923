//! `stackctl render`: write the Compose file and its config files for a target.

use anyhow::Result;

use crate::cli::RenderArgs;
use crate::ctx::Ctx;
use crate::render::{self, Target};

pub fn run(ctx: &Ctx, a: RenderArgs) -> Result<()> {
    let report = render::write_target(ctx.stack()?, ctx.env()?, a.target, a.output.as_deref())?;
    println!("rendered {}", report.compose_path.display());
    if a.target == Target::Dokploy {
        println!(
            "config files for Dokploy's file mounts: {}",
            report.files_dir.display()
        );
    }
    Ok(())
}
