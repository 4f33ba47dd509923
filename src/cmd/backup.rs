//! `stackctl backup [--type full|diff|incr]`, `backup list [--json]`, `backup verify [--json]`.

use anyhow::Result;

use crate::backup::{self, human_bytes};
use crate::cli::{BackupAction, BackupArgs};
use crate::ctx::Ctx;

pub fn run(ctx: &Ctx, a: BackupArgs) -> Result<()> {
    // Inside the `backup` service's container: no stack directory there.
    match &a.action {
        Some(BackupAction::Health) => return backup::schedule_health(),
        Some(BackupAction::Schedule { full, diff }) => {
            return ctx.block_on(backup::run_schedule(full, diff));
        }
        _ => {}
    }
    let stack = ctx.stack()?;
    match a.action {
        Some(BackupAction::Health | BackupAction::Schedule { .. }) => {}
        None => {
            eprintln!("backup: taking a {:?} backup (pgBackRest)", a.kind);
            let r =
                ctx.block_on(async { backup::backup(ctx.docker().await?, stack, a.kind).await })?;
            println!(
                "backup {} ({}): database {}, {} added to the repository, {:.1}s",
                r.label,
                r.kind,
                human_bytes(r.database_bytes),
                human_bytes(r.repository_bytes),
                r.seconds
            );
        }
        Some(BackupAction::Verify { json }) => {
            let env = ctx.env()?;
            let r =
                ctx.block_on(async { backup::verify(ctx.docker().await?, stack, env).await })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            println!(
                "backup {} verified: repository checksums ok; restored and started in a scratch \
                 container; amcheck passed on {} B-tree indexes; {} tables, {} rows in {} \
                 databases ({:.1}s)",
                r.label,
                r.indexes(),
                r.tables(),
                r.rows(),
                r.databases.len(),
                r.seconds
            );
        }
        Some(BackupAction::List { json }) => {
            let l = ctx.block_on(async { backup::list(ctx.docker().await?, stack).await })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&l)?);
                return Ok(());
            }
            if l.sets.is_empty() {
                println!(
                    "no backups yet in stanza {} ({}); take one with `stackctl backup`",
                    l.stanza, l.status
                );
                return Ok(());
            }
            println!(
                "{:<34} {:<5} {:<20} {:>10} {:>10}  WAL",
                "LABEL", "TYPE", "FINISHED (UTC)", "DATABASE", "REPO"
            );
            for s in &l.sets {
                println!(
                    "{:<34} {:<5} {:<20} {:>10} {:>10}  {} .. {}",
                    s.label,
                    s.kind,
                    s.finished.format("%Y-%m-%d %H:%M:%S"),
                    human_bytes(s.database_bytes),
                    human_bytes(s.repository_bytes),
                    s.wal_start.as_deref().unwrap_or("-"),
                    s.wal_stop.as_deref().unwrap_or("-"),
                );
            }
            for w in &l.wal {
                println!(
                    "archived WAL ({}): {} .. {}",
                    w.database,
                    w.first.as_deref().unwrap_or("-"),
                    w.last.as_deref().unwrap_or("-")
                );
            }
            if let Some(w) = l.restorable {
                println!(
                    "restorable: {} .. {} (restore --to accepts a time in between)",
                    w.earliest
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    w.latest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
        }
    }
    Ok(())
}
