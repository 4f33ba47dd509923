//! stackctl: parse the command line, run one feature, print errors once with a hint.

mod cli;
mod cmd;
mod compose;
mod config;
mod db;
mod engine;
mod error;
mod files;
mod groups;
mod images;
mod init;
mod publish;
mod render;
mod scram;
mod secrets;
mod stackdir;
mod supabase;
mod tenants;
mod tls;
mod workers;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};
use config::Stack;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match cli.command {
        Command::Init(a) => init::run(
            &dir,
            &init::InitOptions {
                project: a.project,
                domain: a.domain,
                pooler: a.pooler,
                rotate: a.rotate,
                invalidate_tokens: a.invalidate_tokens,
            },
        ),
        Command::Render(a) => {
            let stack = Stack::load(&dir)?;
            let report = render::run(&stack, a.target, a.output.as_deref())?;
            println!("rendered {}", report.compose_path.display());
            if a.target == render::Target::Dokploy {
                println!(
                    "config files for Dokploy's file mounts: {}",
                    report.files_dir.display()
                );
            }
            Ok(())
        }
        Command::Up(a) => engine::cmd_up(&Stack::load(&dir)?, a),
        Command::Down(a) => engine::cmd_down(&Stack::load(&dir)?, a),
        Command::Status(a) => engine::cmd_status(&Stack::load(&dir)?, a),
        Command::Logs(a) => engine::cmd_logs(&Stack::load(&dir)?, a),
        Command::Build(a) => engine::cmd_build(&Stack::load(&dir)?, a),
        Command::Migrate(a) => engine::cmd_migrate(&dir, a),
        Command::Worker(a) => workers::run(&Stack::load(&dir)?, a),
        Command::Queue(a) => workers::run_queue(&Stack::load(&dir)?, a),
        Command::ImportSupabase(a) => supabase::run(&dir, a),
        Command::Tenant(a) => tenants::run_tenant(&Stack::load(&dir)?, a.action),
        Command::Token(a) => tenants::run_token(&Stack::load(&dir)?, a.action),
        Command::GenToken(a) => tenants::run_gen_token(&Stack::load(&dir)?, a),
        Command::Publish(a) => publish::run(&Stack::load(&dir)?, a),
        Command::Completions(_) | Command::Man => unreachable!("handled before the stack is read"),
    }
}
