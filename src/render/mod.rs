//! Stack -> tera templates -> one Compose file plus the config files it mounts.
//!
//! The rendered Compose file is the single source of truth: Dokploy deploys it as it is, and
//! `stackctl up` reads it back. Secrets never appear in it (services refer to `${VAR}` from `.env`);
//! they appear only in the pooler's config files, which are written 0600.
//!
//! Targets differ only in wiring: `local` publishes ports on 127.0.0.1 and mounts config files from
//! the stack directory; `dokploy` publishes nothing, joins routed services to `dokploy-network` with
//! Traefik labels, and mounts config files from `../files/` (Dokploy's file mounts), which `render`
//! writes beside the output. `swarm` is a stack file for `docker stack deploy` (and Dokploy's
//! "Docker Stack" type), with the files it reads under `../files/` too: see [`swarm`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use tera::Tera;

use crate::config::{PoolMode, PoolerKind, Stack};
use crate::error::UserError;
use crate::files::{self, WritePlan, normalize};
use crate::scram;
use crate::secrets::{EnvFile, SECRETS};

pub mod swarm;

/// Where the rendered stack will run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Local,
    Dokploy,
    /// A Docker Swarm stack file (`docker stack deploy`, `stackctl up --swarm`).
    Swarm,
}

impl ConfigFile {
    /// Its bytes: rendered, or those of the file `init` made (`referenced`, by name).
    pub fn bytes(&self, referenced: &[(&str, Vec<u8>)]) -> Vec<u8> {
        match &self.contents {
            Some(b) => b.clone(),
            None => referenced
                .iter()
                .find(|(n, _)| *n == self.name)
                .map(|(_, b)| b.clone())
                .unwrap_or_default(),
        }
    }
}

impl Target {
    fn as_str(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Dokploy => "dokploy",
            Target::Swarm => "swarm",
        }
    }

    /// The default output path, relative to the stack directory.
    pub fn default_output(self) -> &'static str {
        match self {
            Target::Local => "docker-compose.yml",
            Target::Dokploy => "dokploy/code/docker-compose.yml",
            Target::Swarm => "swarm/code/docker-stack.yml",
        }
    }
}

/// A file the Compose file mounts as a `config`.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Its name under the Compose file's top-level `configs:`.
    pub name: &'static str,
    /// Its path relative to the stack directory.
    pub path: &'static str,
    /// Rendered contents, or `None` for a file `init` made that render only references (certs).
    pub contents: Option<Vec<u8>>,
    pub mode: u32,
}

const COMPOSE_TEMPLATE: &str = include_str!("../../templates/docker-compose.yml.tera");
const SWARM_MACROS: &str = include_str!("../../templates/swarm.tera");
const STACK_TOML_TEMPLATE: &str = include_str!("../../templates/stack.toml.tera");
const PGCAT_TEMPLATE: &str = include_str!("../../pgcat/pgcat.toml.tera");
const PGBOUNCER_INI_TEMPLATE: &str = include_str!("../../templates/pgbouncer/pgbouncer.ini.tera");
const PGBOUNCER_USERLIST_TEMPLATE: &str =
    include_str!("../../templates/pgbouncer/userlist.txt.tera");
const PGBACKREST_TEMPLATE: &str = include_str!("../../templates/pgbackrest/pgbackrest.conf.tera");
const LOKI_TEMPLATE: &str = include_str!("../../observability/loki.yaml.tera");
const ALLOY_CONFIG: &str = include_str!("../../observability/config.alloy");
const GRAFANA_DATASOURCES: &str = include_str!("../../observability/grafana/datasources.yaml");
const GRAFANA_DASHBOARDS: &str = include_str!("../../observability/grafana/dashboards.yaml");
const GRAFANA_DASHBOARD_LOGS: &str = include_str!("../../observability/grafana/stack-logs.json");
const PROMETHEUS_TEMPLATE: &str =
    include_str!("../../observability/prometheus/prometheus.yml.tera");
const PROMETHEUS_ALERTS: &str = include_str!("../../observability/prometheus/alerts.yml");
const PROMETHEUS_POOLER_ALERTS_PGBOUNCER: &str =
    include_str!("../../observability/prometheus/pooler-alerts-pgbouncer.yml");
const PROMETHEUS_POOLER_ALERTS_PGCAT: &str =
    include_str!("../../observability/prometheus/pooler-alerts-pgcat.yml");

/// A metric dashboard Grafana provisions from `observability/grafana/`.
pub struct Dashboard {
    /// Its name under the Compose file's `configs:`.
    pub config: &'static str,
    /// Its file name, in the stack directory's `observability/grafana/` and in Grafana's
    /// `/etc/grafana/dashboards/`.
    pub file: &'static str,
    pub path: &'static str,
    /// Its JSON, one per pooler where the panels read the pooler's own metrics.
    json: Json,
}

enum Json {
    Any(&'static str),
    PerPooler {
        pgbouncer: &'static str,
        pgcat: &'static str,
    },
}

impl Dashboard {
    /// The dashboard's JSON for a stack whose pooler is `pooler`.
    pub fn json(&self, pooler: PoolerKind) -> &'static str {
        match (&self.json, pooler) {
            (Json::Any(j), _) => j,
            (Json::PerPooler { pgbouncer, .. }, PoolerKind::Pgbouncer) => pgbouncer,
            (Json::PerPooler { pgcat, .. }, PoolerKind::Pgcat) => pgcat,
        }
    }
}

macro_rules! dashboard {
    ($config:literal, $file:literal) => {
        Dashboard {
            config: $config,
            file: $file,
            path: concat!("observability/grafana/", $file),
            json: Json::Any(include_str!(concat!("../../observability/grafana/", $file))),
        }
    };
}

/// The metric dashboards (the logs dashboard, `stack-logs.json`, is mounted on its own). The
/// pooler's comes in two sources, `pooler-pgbouncer.json` and `pooler-pgcat.json`, and is written
/// as `pooler.json` for the pooler stack.toml chose.
pub const METRIC_DASHBOARDS: &[Dashboard] = &[
    dashboard!("grafana_dashboard_overview", "stack-overview.json"),
    dashboard!("grafana_dashboard_postgresql", "postgresql.json"),
    Dashboard {
        config: "grafana_dashboard_pooler",
        file: "pooler.json",
        path: "observability/grafana/pooler.json",
        json: Json::PerPooler {
            pgbouncer: include_str!("../../observability/grafana/pooler-pgbouncer.json"),
            pgcat: include_str!("../../observability/grafana/pooler-pgcat.json"),
        },
    },
    dashboard!("grafana_dashboard_postgate", "postgate.json"),
    dashboard!("grafana_dashboard_runner", "runner.json"),
];

fn templates() -> Result<Tera> {
    let mut t = Tera::default();
    t.add_raw_templates(vec![
        ("swarm.tera", SWARM_MACROS),
        ("docker-compose.yml", COMPOSE_TEMPLATE),
        ("stack.toml", STACK_TOML_TEMPLATE),
        ("pgcat.toml", PGCAT_TEMPLATE),
        ("pgbouncer.ini", PGBOUNCER_INI_TEMPLATE),
        ("userlist.txt", PGBOUNCER_USERLIST_TEMPLATE),
        ("loki.yaml", LOKI_TEMPLATE),
        ("pgbackrest.conf", PGBACKREST_TEMPLATE),
        ("prometheus.yml", PROMETHEUS_TEMPLATE),
    ])
    .context("loading the built-in templates")?;
    Ok(t)
}

fn render_one(name: &str, ctx: &tera::Context) -> Result<String> {
    templates()?
        .render(name, ctx)
        .with_context(|| format!("rendering the {name} template"))
}

/// `stack.toml` with every setting written out and commented.
pub fn stack_toml(stack: &Stack) -> Result<String> {
    let mut ctx = tera::Context::new();
    ctx.insert("f", &stack.file);
    ctx.insert("hosts", &stack.hosts);
    render_one("stack.toml", &ctx)
}

#[derive(Serialize)]
struct PoolUser<'a> {
    role: &'a str,
    password: &'a str,
    verifier: String,
}

/// The logins that go through the pooler, with their passwords from `.env`.
fn pooled_users(env: &EnvFile) -> Vec<PoolUser<'_>> {
    SECRETS
        .iter()
        .filter(|s| s.pooled)
        .filter_map(|s| {
            let role = s.role?;
            let password = env.get(s.key)?;
            Some(PoolUser {
                role,
                password,
                verifier: scram::verifier(role, password),
            })
        })
        .collect()
}

fn pool_context(stack: &Stack, env: &EnvFile) -> tera::Context {
    let p = &stack.file.pooler;
    let mut ctx = tera::Context::new();
    ctx.insert("database", &stack.file.postgres.database);
    ctx.insert(
        "pool_mode",
        match p.pool_mode {
            PoolMode::Transaction => "transaction",
            PoolMode::Session => "session",
        },
    );
    ctx.insert("pool_size", &p.pool_size);
    ctx.insert("min_pool_size", &p.min_pool_size);
    ctx.insert("max_client_conn", &p.max_client_conn);
    ctx.insert("prepared_statements", &p.prepared_statements);
    ctx.insert(
        "admin_password",
        env.get("POOLER_ADMIN_PASSWORD").unwrap_or_default(),
    );
    ctx
}

/// Every config file the Compose file mounts, rendered from the stack and its secrets.
pub fn config_files(stack: &Stack, env: &EnvFile) -> Result<Vec<ConfigFile>> {
    let mut out = vec![
        ConfigFile {
            name: "postgres_server_crt",
            path: "certs/server.crt",
            contents: None,
            mode: files::PUBLIC,
        },
        ConfigFile {
            name: "postgres_server_key",
            path: "certs/server.key",
            contents: None,
            mode: files::SECRET,
        },
    ];
    let mut bctx = tera::Context::new();
    bctx.insert("stanza", crate::config::STANZA);
    bctx.insert("retention_full", &stack.file.backup.retention_full);
    out.push(ConfigFile {
        name: "pgbackrest_conf",
        path: "backup/pgbackrest.conf",
        contents: Some(render_one("pgbackrest.conf", &bctx)?.into_bytes()),
        mode: files::PUBLIC,
    });
    let mut ctx = pool_context(stack, env);
    match stack.pooler() {
        PoolerKind::Pgcat => {
            ctx.insert("users", &pooled_users(env));
            out.push(ConfigFile {
                name: "pgcat_toml",
                path: "pgcat/pgcat.toml",
                contents: Some(render_one("pgcat.toml", &ctx)?.into_bytes()),
                mode: files::SECRET,
            });
        }
        PoolerKind::Pgbouncer => {
            let mut users = pooled_users(env);
            if let Some(pw) = env.get("POOLER_ADMIN_PASSWORD") {
                users.push(PoolUser {
                    role: "pooler_admin",
                    password: pw,
                    verifier: scram::verifier("pooler_admin", pw),
                });
            }
            // pgbouncer_exporter reads the admin console as `monitor` (a stats_user).
            if let Some(pw) = env.get("MONITOR_DB_PASSWORD") {
                users.push(PoolUser {
                    role: "monitor",
                    password: pw,
                    verifier: scram::verifier("monitor", pw),
                });
            }
            // PgBouncer logs in as its auth_user itself (no client proof to pass through), so it
            // needs that login's clear password. pooler_auth may only call pooler.auth_lookup.
            if let Some(pw) = env.get("POOLER_AUTH_PASSWORD") {
                users.push(PoolUser {
                    role: "pooler_auth",
                    password: pw,
                    verifier: pw.to_string(),
                });
            }
            ctx.insert("users", &users);
            out.push(ConfigFile {
                name: "pgbouncer_ini",
                path: "pgbouncer/pgbouncer.ini",
                contents: Some(render_one("pgbouncer.ini", &ctx)?.into_bytes()),
                mode: files::PUBLIC,
            });
            out.push(ConfigFile {
                name: "pgbouncer_userlist",
                path: "pgbouncer/userlist.txt",
                contents: Some(render_one("userlist.txt", &ctx)?.into_bytes()),
                mode: files::SECRET,
            });
        }
    }
    if stack.file.observability.enabled {
        let mut lctx = tera::Context::new();
        lctx.insert("retention", &stack.file.observability.log_retention);
        let stat = |name, path, text: &str| ConfigFile {
            name,
            path,
            contents: Some(text.as_bytes().to_vec()),
            mode: files::PUBLIC,
        };
        out.push(ConfigFile {
            name: "loki_yaml",
            path: "observability/loki.yaml",
            contents: Some(render_one("loki.yaml", &lctx)?.into_bytes()),
            mode: files::PUBLIC,
        });
        out.push(stat(
            "alloy_config",
            "observability/config.alloy",
            ALLOY_CONFIG,
        ));
        out.push(stat(
            "grafana_datasources",
            "observability/grafana/datasources.yaml",
            GRAFANA_DATASOURCES,
        ));
        out.push(stat(
            "grafana_dashboards",
            "observability/grafana/dashboards.yaml",
            GRAFANA_DASHBOARDS,
        ));
        out.push(stat(
            "grafana_dashboard_logs",
            "observability/grafana/stack-logs.json",
            GRAFANA_DASHBOARD_LOGS,
        ));
        for d in METRIC_DASHBOARDS {
            out.push(stat(d.config, d.path, d.json(stack.pooler())));
        }
    }
    if stack.metrics_enabled() {
        let mut pctx = tera::Context::new();
        pctx.insert("scrape_interval", &stack.file.metrics.scrape_interval);
        pctx.insert("pooler", stack.pooler().service_name());
        out.push(ConfigFile {
            name: "prometheus_yml",
            path: "observability/prometheus/prometheus.yml",
            contents: Some(render_one("prometheus.yml", &pctx)?.into_bytes()),
            mode: files::PUBLIC,
        });
        out.push(ConfigFile {
            name: "prometheus_alerts",
            path: "observability/prometheus/alerts.yml",
            contents: Some(PROMETHEUS_ALERTS.as_bytes().to_vec()),
            mode: files::PUBLIC,
        });
        let pooler_alerts = match stack.pooler() {
            PoolerKind::Pgbouncer => PROMETHEUS_POOLER_ALERTS_PGBOUNCER,
            PoolerKind::Pgcat => PROMETHEUS_POOLER_ALERTS_PGCAT,
        };
        out.push(ConfigFile {
            name: "prometheus_pooler_alerts",
            path: "observability/prometheus/pooler-alerts.yml",
            contents: Some(pooler_alerts.as_bytes().to_vec()),
            mode: files::PUBLIC,
        });
    }
    Ok(out)
}

#[derive(Serialize)]
struct ConfigRef<'a> {
    name: &'a str,
    path: &'a str,
    /// Holds secrets (written 0600): a Swarm secret on the swarm target.
    secret: bool,
    /// Its Swarm object name (swarm target).
    swarm_name: String,
}

/// The Compose file for `target`, with its config files and migrations under `files_prefix`
/// (relative to the Compose file, or absolute).
pub fn compose(
    stack: &Stack,
    target: Target,
    configs: &[ConfigFile],
    files_prefix: &str,
    swarm: &swarm::SwarmParts,
) -> Result<String> {
    let f = &stack.file;
    let mut ctx = tera::Context::new();
    ctx.insert("target", target.as_str());
    ctx.insert("project", &f.project.name);
    ctx.insert("database", &f.postgres.database);
    ctx.insert("pooler", stack.pooler().service_name());
    ctx.insert("images", &f.images);
    ctx.insert("hosts", &stack.hosts);
    ctx.insert("ports", &f.ports);
    ctx.insert("replicas", &f.runner.replicas);
    ctx.insert("runner", &f.runner);
    ctx.insert("postgate", &f.postgate);
    ctx.insert("observability", &f.observability.enabled);
    ctx.insert("metrics_on", &stack.metrics_enabled());
    ctx.insert("metrics", &f.metrics);
    ctx.insert("backup", &f.backup);
    ctx.insert("stanza", crate::config::STANZA);
    ctx.insert(
        "migrations_dir",
        f.migrations.directory.trim_end_matches('/'),
    );
    ctx.insert("files_prefix", files_prefix);
    let role_secrets: Vec<&str> = SECRETS
        .iter()
        .filter(|s| {
            s.role.is_some() && s.key != "POSTGRES_PASSWORD" && s.key != "POOLER_ADMIN_PASSWORD"
        })
        .map(|s| s.key)
        .collect();
    ctx.insert("role_secrets", &role_secrets);
    let refs: Vec<ConfigRef> = configs
        .iter()
        .map(|c| ConfigRef {
            name: c.name,
            path: c.path,
            secret: c.mode == files::SECRET,
            swarm_name: swarm.config_names.get(c.name).cloned().unwrap_or_default(),
        })
        .collect();
    ctx.insert("configs", &refs);
    ctx.insert("swarm_cfg", &f.swarm);
    ctx.insert("traefik_network", &f.swarm.traefik_network);
    ctx.insert("swarm_secrets", &swarm.secrets);
    let keys: Vec<&str> = swarm.secrets.iter().map(|x| x.name.as_str()).collect();
    ctx.insert("swarm_secret_keys", &keys);
    ctx.insert("migrations", &swarm.migrations);
    let dashboards: Vec<(&str, &str)> = METRIC_DASHBOARDS
        .iter()
        .map(|d| (d.config, d.file))
        .collect();
    ctx.insert("dashboards", &dashboards);
    render_one("docker-compose.yml", &ctx)
}

fn files_prefix(target: Target) -> &'static str {
    match target {
        Target::Local => "./",
        Target::Dokploy | Target::Swarm => "../files/",
    }
}

/// Writes the config files into the stack directory (mode per file); returns those that changed.
/// Checks first that every target can be written, so a failure writes nothing.
pub fn write_config_files(stack: &Stack, configs: &[ConfigFile]) -> Result<Vec<String>> {
    let mut plan = WritePlan::default();
    plan_config_files(&mut plan, stack, configs);
    plan.check()?;
    plan.apply()
}

fn plan_config_files(plan: &mut WritePlan, stack: &Stack, configs: &[ConfigFile]) {
    for c in configs {
        if let Some(bytes) = &c.contents {
            plan.file(stack.dir.join(c.path), bytes.clone(), c.mode, c.path);
        }
    }
    plan.dir(stack.dir.join(&stack.file.migrations.directory));
}

/// Where a render's Compose file and config files go.
#[derive(Debug, Clone)]
pub struct RenderReport {
    pub compose_path: PathBuf,
    pub files_dir: PathBuf,
}

/// A render computed and checked, nothing written yet: every file's bytes and mode, with where
/// they go. [`Rendered::write`] writes them.
pub struct Rendered {
    plan: WritePlan,
    pub report: RenderReport,
}

/// Renders the stack for `target` into `output` (default per target), with its config files, and
/// writes them; each file written is named on stderr (progress: stdout is the command's result).
pub fn write_target(
    stack: &Stack,
    env: &EnvFile,
    target: Target,
    output: Option<&Path>,
) -> Result<RenderReport> {
    let rendered = render(stack, env, target, output)?;
    let report = rendered.report.clone();
    for f in rendered.write()? {
        eprintln!("wrote {f}");
    }
    Ok(report)
}

impl Rendered {
    /// Writes every file (each atomically, through a temporary file and a rename); returns the
    /// names of the files written.
    pub fn write(self) -> Result<Vec<String>> {
        self.plan.apply()
    }
}

/// Computes every file `target` needs and checks they can be written; writes nothing.
///
/// Everything is computed and checked before the first byte is written: a bad `.env`, a missing
/// certificate or an unwritable directory leaves every file as it was.
pub fn render(
    stack: &Stack,
    env: &EnvFile,
    target: Target,
    output: Option<&Path>,
) -> Result<Rendered> {
    env.require_all()?;
    let configs = config_files(stack, env)?;
    let output = normalize(&match output {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => std::env::current_dir()?.join(p),
        None => stack.dir.join(target.default_output()),
    });
    let out_dir = output
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // A local Compose file outside the stack directory refers to the stack's files by absolute path.
    let same_dir = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    let prefix = match target {
        Target::Local if !same_dir(&out_dir, &stack.dir) => {
            let dir = stack
                .dir
                .canonicalize()
                .with_context(|| format!("resolving {}", stack.dir.display()))?;
            format!("{}/", dir.display())
        }
        _ => files_prefix(target).to_string(),
    };
    // Files `init` made that render only references (certificates) must exist.
    let mut referenced = Vec::new();
    for c in configs.iter().filter(|c| c.contents.is_none()) {
        let path = stack.dir.join(c.path);
        let bytes = std::fs::read(&path).map_err(|e| {
            UserError::new(format!("{} cannot be read: {e}", path.display()))
                .hint("run `stackctl init`: it creates the stack's certificates")
        })?;
        referenced.push((c.name, bytes));
    }
    let migrations_dir = &stack.file.migrations.directory;
    let swarm_parts = match target {
        Target::Swarm => swarm::parts(
            stack,
            env,
            &configs,
            &referenced,
            migrations_dir.trim_end_matches('/'),
            &read_migrations(&stack.dir.join(migrations_dir))?,
        ),
        _ => swarm::SwarmParts::default(),
    };
    let compose_text = compose(stack, target, &configs, &prefix, &swarm_parts)?;

    let mut plan = WritePlan::default();
    plan_config_files(&mut plan, stack, &configs);
    let files_dir = match target {
        Target::Local => out_dir.clone(),
        Target::Dokploy | Target::Swarm => {
            // Dokploy mounts `../files/...` relative to the Compose file: copy every config there.
            let files_dir = normalize(&out_dir.join("..").join("files"));
            for c in &configs {
                let bytes = c.bytes(&referenced);
                plan.file(
                    files_dir.join(c.path),
                    bytes,
                    c.mode,
                    format!("files/{}", c.path),
                );
            }
            let migrations = &stack.file.migrations.directory;
            plan.dir(files_dir.join(migrations));
            for (name, bytes) in read_migrations(&stack.dir.join(migrations))? {
                plan.file(
                    files_dir.join(migrations).join(&name),
                    bytes,
                    files::PUBLIC,
                    format!("files/{migrations}/{name}"),
                );
            }
            // Swarm: every secret a file of its own (docker stack deploy reads no .env).
            for x in swarm_parts.secrets.iter().filter(|x| x.own_file) {
                plan.file(
                    files_dir.join(&x.path),
                    x.contents.clone(),
                    files::SECRET,
                    format!("files/{}", x.path),
                );
            }
            files_dir
        }
    };
    plan.file(
        output.clone(),
        compose_text.into_bytes(),
        files::PUBLIC,
        output.display().to_string(),
    );
    plan.check()?;
    Ok(Rendered {
        plan,
        report: RenderReport {
            compose_path: output,
            files_dir,
        },
    })
}

/// The regular files of the migrations directory (none when it does not exist).
fn read_migrations(from: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
    };
    for e in entries {
        let e = e.with_context(|| format!("reading {}", from.display()))?;
        if e.file_type()?.is_file() {
            let bytes = std::fs::read(e.path())
                .with_context(|| format!("reading {}", e.path().display()))?;
            out.push((e.file_name().to_string_lossy().into_owned(), bytes));
        }
    }
    out.sort();
    Ok(out)
}
