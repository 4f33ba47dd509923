//! The engine (being built): reconcile the rendered Compose project with the Docker Engine.

use anyhow::{Result, bail};

use crate::cli::{BuildArgs, DownArgs, LogsArgs, MigrateArgs, StatusArgs, UpArgs};
use crate::config::Stack;

pub fn cmd_up(_s: &Stack, _a: UpArgs) -> Result<()> {
    bail!("`up` is not built yet")
}
pub fn cmd_down(_s: &Stack, _a: DownArgs) -> Result<()> {
    bail!("`down` is not built yet")
}
pub fn cmd_status(_s: &Stack, _a: StatusArgs) -> Result<()> {
    bail!("`status` is not built yet")
}
pub fn cmd_logs(_s: &Stack, _a: LogsArgs) -> Result<()> {
    bail!("`logs` is not built yet")
}
pub fn cmd_build(_s: &Stack, _a: BuildArgs) -> Result<()> {
    bail!("`build` is not built yet")
}
pub fn cmd_migrate(d: &std::path::Path, a: MigrateArgs) -> Result<()> {
    // With a URL, inside the migrate container, or for `migrate new`: no Docker needed.
    if a.database_url.is_some()
        || a.from_env
        || matches!(a.action, Some(crate::cli::MigrateAction::New { .. }))
    {
        return crate::db::run(d, a);
    }
    bail!("`migrate` in the stack's container is not built yet; pass --database-url")
}
