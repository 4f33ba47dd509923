//! `stackctl import-supabase`: copy a Supabase project's database into the stack, verified.

use anyhow::Result;

use crate::cli::ImportSupabaseArgs;
use crate::ctx::Ctx;
use crate::supabase::{self, Options};

pub fn run(ctx: &Ctx, a: ImportSupabaseArgs) -> Result<()> {
    let stack = ctx.stack()?;
    let env = ctx.env()?;
    let opts = Options {
        from: a.from,
        dump: a.dump,
        schemas: a.schemas,
        jobs: a.jobs,
        dry_run: a.dry_run,
        skip_auth_users: a.skip_auth_users,
        leave_out_missing_extensions: a.leave_out_missing_extensions,
        // clap refuses --clean without --yes.
        clean: a.clean && a.yes,
        database_url: a.database_url,
        json: a.json,
    };
    ctx.block_on(async { supabase::run(stack, env, ctx.docker().await?, opts).await })
}
