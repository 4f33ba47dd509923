//! JSON log lines on stdout (one object per line, for Loki), and the `tracing` subscriber that
//! writes the events of the libraries we link (postgate's, behind `env.DB`) as the same lines,
//! with the fields of the spans they happen in (a worker's name, version and request id).

use std::fmt::Debug;

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

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

/// The fields of a span or an event, as JSON (`message` becomes `msg`).
#[derive(Default, Clone)]
struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "message" => "msg",
            n => n,
        };
        self.0.insert(name.to_string(), value);
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, json!(value));
    }
}

/// Writes each `tracing` event as one of our JSON lines.
struct JsonLines;

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<Fields>() {
                    fields.0.extend(f.0.clone());
                }
            }
        }
        event.record(&mut fields);
        let msg = match fields.0.remove("msg") {
            Some(Value::String(m)) => m,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let meta = event.metadata();
        fields.0.insert("target".into(), json!(meta.target()));
        let level = match *meta.level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        line(level, &msg, Value::Object(fields.0));
    }
}

/// Send `tracing` events at `info` and above to stdout as JSON lines. Once per process; a
/// second call (or another subscriber already set) changes nothing.
pub fn install_tracing() {
    let subscriber = tracing_subscriber::registry().with(JsonLines.with_filter(LevelFilter::INFO));
    let _ = tracing::subscriber::set_global_default(subscriber);
}
