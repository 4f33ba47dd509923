//! JSON log lines on stdout (one object per line, for Loki).

use serde_json::{Value, json};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Write one JSON line with `level`, `msg` and extra fields.
pub fn line(level: &str, msg: &str, fields: Value) {
    let mut obj = json!({"ts": now(), "level": level, "msg": msg});
    if let (Some(o), Value::Object(extra)) = (obj.as_object_mut(), fields) {
        o.extend(extra);
    }
    println!("{obj}");
}

pub fn info(msg: &str, fields: Value) {
    line("info", msg, fields);
}

/// Log an error with its whole source chain.
pub fn error(msg: &str, err: &dyn std::error::Error) {
    let mut chain = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    line("error", msg, json!({"error": chain}));
}
