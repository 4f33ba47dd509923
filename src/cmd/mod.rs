//! The command layer: one file per command. Each maps its clap arguments to the options of the
//! feature module that does the work, takes what it needs from `Ctx` (the stack, `.env`, the
//! Docker client, the runtime), and prints the command's result on stdout; progress goes to
//! stderr. Nothing below this layer imports `cli`.

pub mod backup;
pub mod build;
pub mod completions;
pub mod db;
pub mod down;
pub mod import;
pub mod init;
pub mod logs;
pub mod man;
pub mod migrate;
pub mod publish;
pub mod queue;
pub mod render;
pub mod restore;
pub mod status;
pub mod tenant;
pub mod token;
pub mod up;
pub mod worker;
pub mod workflow;

use anyhow::Result;

use crate::cli::Command;
use crate::ctx::Ctx;

/// Runs one command that needs a stack directory (`completions` and `man` run before one is
/// resolved).
pub fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Init(a) => init::run(ctx, a),
        Command::Render(a) => render::run(ctx, a),
        Command::Up(a) => up::run(ctx, a),
        Command::Down(a) => down::run(ctx, a),
        Command::Status(a) => status::run(ctx, a),
        Command::Logs(a) => logs::run(ctx, a),
        Command::Build(a) => build::run(ctx, a),
        Command::Migrate(a) => migrate::run(ctx, a),
        Command::Backup(a) => backup::run(ctx, a),
        Command::Restore(a) => restore::run(ctx, a),
        Command::Db(a) => db::run(ctx, a),
        Command::Worker(a) => worker::run(ctx, a),
        Command::Queue(a) => queue::run(ctx, a),
        Command::Workflow(a) => workflow::run(ctx, a),
        Command::ImportSupabase(a) => import::run(ctx, a),
        Command::Tenant(a) => tenant::run(ctx, a),
        Command::Token(a) => token::run(ctx, a),
        Command::GenToken(a) => token::run_gen_token(ctx, a),
        Command::Publish(a) => publish::run(ctx, a),
        Command::Completions(a) => {
            completions::run(&a);
            Ok(())
        }
        Command::Man => man::run(),
    }
}
