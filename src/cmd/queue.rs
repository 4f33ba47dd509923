//! `stackctl queue stats|retry-dead`: the runner's durable queue, through its admin CLI.

use anyhow::Result;

use super::worker::runner_admin;
use crate::cli::{QueueAction, QueueArgs};
use crate::ctx::Ctx;

pub fn run(ctx: &Ctx, a: QueueArgs) -> Result<()> {
    let out = match &a.action {
        QueueAction::Stats { json } => {
            let mut args = vec!["queue", "stats"];
            if *json {
                args.push("--json");
            }
            runner_admin(ctx, &args, None)?
        }
        QueueAction::RetryDead { queue } => {
            let mut args = vec!["queue", "retry-dead"];
            if let Some(q) = queue {
                args.extend(["--queue", q.as_str()]);
            }
            runner_admin(ctx, &args, None)?
        }
    };
    print!("{out}");
    Ok(())
}
