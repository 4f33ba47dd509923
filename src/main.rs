//! stackctl: parse the command line, build one `Ctx` (runtime, stack, `.env`, Docker), run one
//! command (`cmd`), print errors once with a hint.

mod backup;
mod cli;
mod cmd;
mod compose;
mod config;
mod cron;
mod ctx;
mod db;
mod engine;
mod error;
mod files;
mod groups;
mod images;
mod init;
mod publish;
mod registry;
mod render;
mod scram;
mod secrets;
mod stackdir;
mod stacklock;
mod supabase;
mod swarm;
mod tenants;
mod tls;
mod workers;

use std::process::ExitCode;

use anyhow::Result;

use cli::{Cli, Command};
use ctx::Ctx;

fn main() -> ExitCode {
    let cli = protocol::secret_env::parse::<Cli>();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if let Some(hint) = error::hint_of(&err).filter(|h| !h.is_empty()) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // Commands that need no stack directory.
    match &cli.command {
        Command::Completions(a) => {
            cmd::completions::run(a);
            return Ok(());
        }
        Command::Man => return cmd::man::run(),
        _ => {}
    }
    // Resolved once, before any command runs: every path handed on (to Docker too) is absolute.
    let dir = stackdir::resolve(&cli.dir, matches!(cli.command, Command::Init(_)))?;
    let ctx = Ctx::new(dir)?;
    cmd::run(&ctx, cli.command)
}
