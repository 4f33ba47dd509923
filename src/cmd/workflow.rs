//! `stackctl workflow list|status|start|pause|resume|terminate|restart|send-event`: durable
//! workflows' instances, through the runner's admin CLI in a running runner container (as
//! `worker` and `queue` do), so the same rules hold as for the HTTP API and the bindings.

use anyhow::Result;

use super::worker::runner_admin;
use crate::cli::{WorkflowAction, WorkflowArgs};
use crate::ctx::Ctx;
use crate::error::UserError;

pub fn run(ctx: &Ctx, a: WorkflowArgs) -> Result<()> {
    let mut args: Vec<String> = vec!["workflow".into()];
    let mut push = |xs: &[&str]| args.extend(xs.iter().map(|x| x.to_string()));
    match &a.action {
        WorkflowAction::List {
            status,
            workflow,
            limit,
            json,
        } => {
            push(&["list", "--limit", &limit.to_string()]);
            if let Some(s) = status {
                push(&["--status", s]);
            }
            if let Some(w) = workflow {
                push(&["--workflow", w]);
            }
            if *json {
                push(&["--json"]);
            }
        }
        WorkflowAction::Status { id, json } => {
            push(&["status", id]);
            if *json {
                push(&["--json"]);
            }
        }
        WorkflowAction::Start { name, params, id } => {
            push(&["start", name]);
            if let Some(p) = params {
                check_json("--params", p)?;
                push(&["--params", p]);
            }
            if let Some(i) = id {
                push(&["--id", i]);
            }
        }
        WorkflowAction::Pause { id } => push(&["pause", id]),
        WorkflowAction::Resume { id } => push(&["resume", id]),
        WorkflowAction::Terminate { id } => push(&["terminate", id]),
        WorkflowAction::Restart { id } => push(&["restart", id]),
        WorkflowAction::SendEvent {
            id,
            event_type,
            payload,
        } => {
            push(&["send-event", id, event_type]);
            if let Some(p) = payload {
                check_json("--payload", p)?;
                push(&["--payload", p]);
            }
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = runner_admin(ctx, &args, None)?;
    print!("{out}");
    Ok(())
}

/// Bad JSON is refused here, before the stack is touched.
fn check_json(flag: &str, text: &str) -> Result<()> {
    serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
        UserError::new(format!("{flag} is not JSON: {e}"))
            .hint(format!("{flag} '{{\"key\": \"value\"}}' (got: {text})"))
    })?;
    Ok(())
}
