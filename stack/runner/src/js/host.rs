//! What a worker's script sees of the host: `console` (`__log`), `crypto` (`__uuid`,
//! `__random`), `URL` (`__url`), `env.QUEUE` (`__enqueue`), `fetch` (`__fetch`) and `env.DB`
//! (`__db`, only with the worker's own token), workflows (`__wf`, `__wfApi`), then the prelude, the worker's `env` (vars and
//! secrets) and its module, loaded into an engine's context. Blocking calls give their time back to
//! the CPU deadline.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rquickjs::function::Opt;
use rquickjs::{CatchResultExt, Context, Function, Module, Object, Persistent};
use serde_json::json;
use tracing::Instrument as _;

use super::blocking::{blocking, extend};
use super::{Services, WorkerDef, caught};

const PRELUDE: &str = include_str!("prelude.js");

/// `__dispatch` and `__timers`, looked up once the module loaded.
pub(super) type Entry = (Persistent<Function<'static>>, Persistent<Function<'static>>);

/// What the host functions hold on to of their engine.
pub(super) struct Host<'a> {
    pub(super) def: &'a Arc<WorkerDef>,
    pub(super) services: &'a Option<Services>,
    /// The CPU deadline, pushed back by the time a blocking call took.
    pub(super) deadline: &'a Arc<Mutex<Option<Instant>>>,
    /// The invocation's request id, for `console` lines and `env.DB`'s span.
    pub(super) request_id: &'a Rc<RefCell<String>>,
}

/// Install the host functions, the prelude, `env` and the worker's module in `context`; the
/// module's entry points.
pub(super) fn load(context: &Context, host: Host<'_>) -> Result<Entry, String> {
    let def = host.def.clone();
    let request_id = host.request_id.clone();
    context.with(|ctx| {
        let g = ctx.globals();
        let name = def.name.clone();
        let version = def.version;
        let rid = request_id.clone();
        let log = Function::new(ctx.clone(), move |level: String, msg: String| {
            let mut line = json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": level, "msg": msg, "source": "console",
                "worker": name, "version": version,
            });
            let id = rid.borrow();
            if !id.is_empty() {
                line["request_id"] = json!(*id);
            }
            println!("{line}");
        })
        .catch(&ctx)
        .map_err(caught)?;
        g.set("__log", log).catch(&ctx).map_err(caught)?;
        let uuid = Function::new(ctx.clone(), || uuid::Uuid::new_v4().to_string())
            .catch(&ctx)
            .map_err(caught)?;
        g.set("__uuid", uuid).catch(&ctx).map_err(caught)?;
        let random = Function::new(ctx.clone(), |n: usize| {
            let mut v = vec![0u8; n.min(65536)];
            rand::fill(&mut v[..]);
            v
        })
        .catch(&ctx)
        .map_err(caught)?;
        g.set("__random", random).catch(&ctx).map_err(caught)?;
        let parse = Function::new(ctx.clone(), |href: String, base: Opt<String>| {
            parse_url(&href, base.0.as_deref())
        })
        .catch(&ctx)
        .map_err(caught)?;
        g.set("__url", parse).catch(&ctx).map_err(caught)?;
        let services = host.services.clone();
        let deadline = host.deadline.clone();
        let enqueue = Function::new(
            ctx.clone(),
            move |ctx: rquickjs::Ctx<'_>, queue: String, body: String, delay: f64| {
                let Some(s) = &services else {
                    return Err(rquickjs::Exception::throw_message(
                        &ctx,
                        "env.QUEUE is not available here",
                    ));
                };
                let payload: serde_json::Value =
                    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                let delay = if delay.is_finite() {
                    delay.max(0.0)
                } else {
                    0.0
                };
                let started = Instant::now();
                let r = blocking(|| {
                    s.handle.block_on(async {
                        let c = s.pool.get().await.map_err(|e| e.to_string())?;
                        c.query_one(
                            "SELECT runner.enqueue($1, $2, now() + make_interval(secs => $3))",
                            &[&queue, &payload, &delay],
                        )
                        .await
                        .map(|r| r.get::<_, i64>(0))
                        .map_err(|e| e.to_string())
                    })
                });
                extend(&deadline, started.elapsed());
                r.map(|id| id as f64).map_err(|e| {
                    crate::log::line(
                        "error",
                        "env.QUEUE.send failed",
                        json!({"queue": queue, "error": e}),
                    );
                    rquickjs::Exception::throw_message(&ctx, "env.QUEUE.send failed")
                })
            },
        )
        .catch(&ctx)
        .map_err(caught)?;
        g.set("__enqueue", enqueue).catch(&ctx).map_err(caught)?;
        let services = host.services.clone();
        let deadline = host.deadline.clone();
        let fetch = Function::new(ctx.clone(), move |ctx: rquickjs::Ctx<'_>, req: String| {
            let Some(s) = &services else {
                return Err(rquickjs::Exception::throw_type(
                    &ctx,
                    "fetch is not available here",
                ));
            };
            let req: crate::fetch::FetchRequest = serde_json::from_str(&req)
                .map_err(|e| rquickjs::Exception::throw_type(&ctx, &format!("fetch: {e}")))?;
            let started = Instant::now();
            let r = blocking(|| s.handle.block_on(crate::fetch::fetch(&s.fetch, req)));
            extend(&deadline, started.elapsed());
            match r {
                Ok(resp) => Ok(serde_json::to_string(&resp).unwrap_or_default()),
                Err(msg) => Err(rquickjs::Exception::throw_type(&ctx, &msg)),
            }
        })
        .catch(&ctx)
        .map_err(caught)?;
        g.set("__fetch", fetch).catch(&ctx).map_err(caught)?;
        // Workflows: `__wf` records a run's steps (crate::workflow::store), `__wfApi` serves
        // the worker's bindings (crate::workflow::binding).
        let classes: Vec<String> = def.workflows.values().cloned().collect();
        if let Some(s) = host.services.clone() {
            let deadline = host.deadline.clone();
            let allowed = classes.clone();
            let wf = Function::new(ctx.clone(), move |op: String, args: String| -> String {
                let started = Instant::now();
                let r = blocking(|| {
                    s.handle.block_on(crate::workflow::store::op(
                        &s.pool, &s.metrics, &allowed, &op, &args,
                    ))
                });
                extend(&deadline, started.elapsed());
                r.to_string()
            })
            .catch(&ctx)
            .map_err(caught)?;
            g.set("__wf", wf).catch(&ctx).map_err(caught)?;
        }
        if let Some(s) = host.services.clone() {
            let deadline = host.deadline.clone();
            let api = Function::new(
                ctx.clone(),
                move |workflow: String, op: String, args: String| -> String {
                    // Only the worker's own bindings (the prelude's maker is gone once they
                    // are made; this holds even if a script reached it).
                    if !classes.contains(&workflow) {
                        return serde_json::json!({"error": format!("no binding of workflow {workflow} on this worker")}).to_string();
                    }
                    let started = Instant::now();
                    let r = blocking(|| {
                        s.handle.block_on(crate::workflow::binding::call(
                            &s.pool, &workflow, &op, &args,
                        ))
                    });
                    extend(&deadline, started.elapsed());
                    r
                },
            )
            .catch(&ctx)
            .map_err(caught)?;
            g.set("__wfApi", api).catch(&ctx).map_err(caught)?;
        }
        // env.DB: only for a worker that has its own token; the token stays in Rust.
        let gateway = host.services.as_ref().and_then(|s| s.gateway.clone());
        if let (Some(token), Some(gateway), Some(s)) =
            (def.db_token.clone(), gateway, host.services.clone())
        {
            let deadline = host.deadline.clone();
            let (name, version, rid) = (def.name.clone(), def.version, host.request_id.clone());
            let query = Function::new(ctx.clone(), move |sql: String, params: String| -> String {
                let params: Vec<serde_json::Value> =
                    serde_json::from_str(&params).unwrap_or_default();
                let statement = postgate::Statement { sql, params };
                // postgate logs what it keeps from the caller (an internal error's
                // detail) through `tracing`: in this span, with the worker's names.
                let span = tracing::info_span!(
                    "env.DB",
                    worker = name.as_str(),
                    version,
                    request_id = rid.borrow().as_str()
                );
                let started = Instant::now();
                let r = blocking(|| {
                    s.handle.block_on(
                        gateway
                            .query(token.expose(), statement, postgate::RowsAs::Objects)
                            .instrument(span),
                    )
                });
                extend(&deadline, started.elapsed());
                match r {
                    Ok(res) => json!({"ok": true, "result": res}).to_string(),
                    Err(e) => json!({"ok": false, "error": e}).to_string(),
                }
            })
            .catch(&ctx)
            .map_err(caught)?;
            g.set("__db", query).catch(&ctx).map_err(caught)?;
        }
        ctx.eval::<(), _>(PRELUDE).catch(&ctx).map_err(caught)?;
        let env: Object = ctx
            .json_parse(def.vars.to_string())
            .catch(&ctx)
            .map_err(caught)?
            .into_object()
            .ok_or_else(|| "worker vars must be a JSON object".to_string())?;
        let make_queue: Function = g.get("__makeQueue").catch(&ctx).map_err(caught)?;
        let queue: Object = make_queue
            .call((def.default_send_queue(),))
            .catch(&ctx)
            .map_err(caught)?;
        env.set("QUEUE", queue).catch(&ctx).map_err(caught)?;
        for (k, v) in &def.secrets {
            env.set(k.as_str(), v.expose())
                .catch(&ctx)
                .map_err(caught)?;
        }
        let make_db: Function = g.get("__makeDb").catch(&ctx).map_err(caught)?;
        let db: rquickjs::Value = make_db.call(()).catch(&ctx).map_err(caught)?;
        if !db.is_undefined() {
            env.set("DB", db).catch(&ctx).map_err(caught)?;
        }
        let make_workflow: Function = g.get("__makeWorkflow").catch(&ctx).map_err(caught)?;
        for (binding, class) in &def.workflows {
            let b: rquickjs::Value = make_workflow
                .call((class.as_str(),))
                .catch(&ctx)
                .map_err(caught)?;
            env.set(binding.as_str(), b).catch(&ctx).map_err(caught)?;
        }
        g.remove("__makeWorkflow").catch(&ctx).map_err(caught)?;
        g.set("__env", env).catch(&ctx).map_err(caught)?;
        let module = Module::declare(ctx.clone(), format!("{}.js", def.name), def.source.as_str())
            .catch(&ctx)
            .map_err(caught)?;
        let (module, done) = module.eval().catch(&ctx).map_err(caught)?;
        done.finish::<()>().catch(&ctx).map_err(caught)?;
        // A worker that only defines workflows may have no default export.
        let default: rquickjs::Value = module.get("default").catch(&ctx).map_err(caught)?;
        if default.is_undefined() && def.workflows.is_empty() {
            return Err("the module has no default export".to_string());
        }
        g.set("__worker", default).catch(&ctx).map_err(caught)?;
        let classes = Object::new(ctx.clone()).catch(&ctx).map_err(caught)?;
        for class in def.workflows.values() {
            let c: rquickjs::Value = module.get(class.as_str()).catch(&ctx).map_err(caught)?;
            if !c.is_function() {
                return Err(format!(
                    "the module exports no class {class} (a workflow binding names it)"
                ));
            }
            classes.set(class.as_str(), c).catch(&ctx).map_err(caught)?;
        }
        g.set("__wfClasses", classes).catch(&ctx).map_err(caught)?;
        let dispatch: Function = g.get("__dispatch").catch(&ctx).map_err(caught)?;
        let timers: Function = g.get("__timers").catch(&ctx).map_err(caught)?;
        Ok((
            Persistent::save(&ctx, dispatch),
            Persistent::save(&ctx, timers),
        ))
    })
}

/// `new URL(href, base)` backed by the `url` crate; `None` for an invalid URL.
fn parse_url(href: &str, base: Option<&str>) -> Option<String> {
    let u = match base {
        Some(b) => url::Url::parse(b).ok()?.join(href).ok()?,
        None => url::Url::parse(href).ok()?,
    };
    let host = u.host_str().unwrap_or("").to_string();
    let port = u.port().map(|p| p.to_string()).unwrap_or_default();
    Some(
        json!({
            "href": u.as_str(),
            "origin": u.origin().ascii_serialization(),
            "protocol": format!("{}:", u.scheme()),
            "username": u.username(),
            "password": u.password().unwrap_or(""),
            "host": if port.is_empty() { host.clone() } else { format!("{host}:{port}") },
            "hostname": host,
            "port": port,
            "pathname": u.path(),
            "search": u.query().filter(|q| !q.is_empty()).map(|q| format!("?{q}")).unwrap_or_default(),
            "hash": u.fragment().filter(|f| !f.is_empty()).map(|f| format!("#{f}")).unwrap_or_default(),
        })
        .to_string(),
    )
}
