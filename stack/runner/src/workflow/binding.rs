//! A worker's workflow bindings (`env.BINDING.create(...)`, `get(id).status()`, ...): the
//! operation and its JSON arguments as the engine passes them, answered as JSON text
//! (`{"ok": value}` or `{"error": message}`) through [`api`](super::api).

use deadpool_postgres::Pool;
use serde_json::{Value, json};

use super::api::{self, ApiError};

/// Run `op` for `workflow` with `args` (JSON text).
pub async fn call(pool: &Pool, workflow: &str, op: &str, args: &str) -> String {
    let args: Value = serde_json::from_str(args).unwrap_or(Value::Null);
    let id = args["id"].as_str();
    let r: Result<Value, ApiError> = async {
        match op {
            "create" => {
                let params = args.get("params").cloned().unwrap_or(Value::Null);
                api::create(pool, workflow, id, &params)
                    .await
                    .map(Value::String)
            }
            "status" => api::status(pool, Some(workflow), id.unwrap_or_default()).await,
            "sendEvent" => {
                let ty = args["type"].as_str().unwrap_or_default();
                let payload = args.get("payload").cloned().unwrap_or(Value::Null);
                api::send_event(pool, id.unwrap_or_default(), ty, &payload)
                    .await
                    .map(|n| json!(n))
            }
            "pause" | "resume" | "terminate" | "restart" => {
                api::control(pool, id.unwrap_or_default(), op).await
            }
            other => Err(ApiError::Bad(format!("unknown workflow operation {other}"))),
        }
    }
    .await;
    match r {
        Ok(v) => json!({"ok": v}).to_string(),
        Err(ApiError::Db(e)) => {
            crate::log::error("workflow binding call failed", &e);
            json!({"error": "workflow storage failed"}).to_string()
        }
        Err(e) => json!({"error": e.to_string()}).to_string(),
    }
}
