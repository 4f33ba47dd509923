//! `stack.toml` + `.env` -> one validated `Stack`.
//!
//! This is the only place that reads the stack's files. Every default is embedded here, so a
//! missing `stack.toml` still yields a complete configuration; an unknown key, a bad domain or an
//! impossible number is refused here, with the file and line, before any other work starts.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::UserError;
use crate::secrets::EnvFile;

pub const STACK_FILE: &str = "stack.toml";
pub const ENV_FILE: &str = ".env";

/// The connection pooler in front of PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PoolerKind {
    Pgcat,
    Pgbouncer,
}

impl PoolerKind {
    pub fn service_name(self) -> &'static str {
        match self {
            PoolerKind::Pgcat => "pgcat",
            PoolerKind::Pgbouncer => "pgbouncer",
        }
    }
}

/// `stack.toml` as written on disk. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StackFile {
    pub project: ProjectSection,
    pub domains: DomainsSection,
    pub postgres: PostgresSection,
    pub pooler: PoolerSection,
    pub postgate: PostgateSection,
    pub runner: RunnerSection,
    pub migrations: MigrationsSection,
    pub observability: ObservabilitySection,
    pub ports: PortsSection,
    pub images: ImagesSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectSection {
    pub name: String,
    pub domain: String,
}

impl Default for ProjectSection {
    fn default() -> Self {
        Self {
            name: "stack".into(),
            domain: "localhost".into(),
        }
    }
}

/// Host names of the routed services; empty means `<service>.<project.domain>`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DomainsSection {
    pub postgate: String,
    pub runner: String,
    pub workers: String,
    pub grafana: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSection {
    pub database: String,
}

impl Default for PostgresSection {
    fn default() -> Self {
        Self {
            database: "app".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolerSection {
    pub kind: PoolerKind,
    pub pool_mode: PoolMode,
    pub pool_size: u32,
    pub min_pool_size: u32,
    pub max_client_conn: u32,
    /// Protocol-level prepared statements the pooler keeps per server connection (pgCat's
    /// `prepared_statements_cache_size`, PgBouncer's `max_prepared_statements`). 0 turns the
    /// cache off, and named prepared statements (most drivers' default) then fail through a
    /// transaction-mode pool.
    pub prepared_statements: u32,
}

impl Default for PoolerSection {
    fn default() -> Self {
        Self {
            kind: PoolerKind::Pgcat,
            pool_mode: PoolMode::Transaction,
            pool_size: 20,
            min_pool_size: 2,
            max_client_conn: 1000,
            prepared_statements: 500,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Transaction,
    Session,
}

/// postgate's limits (rendered into its container's environment as `POSTGATE_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgateSection {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// Most rows one statement may return; more rolls the transaction back.
    pub max_rows: u64,
    /// Largest JSON response, in bytes; more rolls the transaction back.
    pub max_response_bytes: u64,
    /// `SET LOCAL statement_timeout`, in milliseconds.
    pub statement_timeout_ms: u64,
    /// Most statements in one `/batch`.
    pub max_batch: u32,
    /// Requests per second per token and replica (burst of twice this); 0 = unlimited.
    pub rate_per_token: u32,
    /// Connections per pool (the service login's and each tenant login's).
    pub pool_size: u32,
}

impl Default for PostgateSection {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_rows: 10_000,
            max_response_bytes: 10 << 20,
            statement_timeout_ms: 10_000,
            max_batch: 100,
            rate_per_token: 100,
            pool_size: 16,
        }
    }
}

/// The worker runtime. The limits are each worker's defaults; `stackctl worker deploy`
/// overrides them per worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerSection {
    pub replicas: u32,
    /// CPU time per invocation (ms).
    pub cpu_ms: u32,
    /// Memory per worker runtime (MiB).
    pub memory_mb: u32,
    /// Wall time per invocation (ms).
    pub wall_ms: u32,
    /// Largest request body (bytes).
    pub max_body_bytes: u32,
    /// Invocations of one worker admitted at once per replica.
    pub concurrency: u32,
}

impl Default for RunnerSection {
    fn default() -> Self {
        Self {
            replicas: 3,
            cpu_ms: 50,
            memory_mb: 64,
            wall_ms: 30_000,
            max_body_bytes: 1 << 20,
            concurrency: 256,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationsSection {
    pub directory: String,
}

impl Default for MigrationsSection {
    fn default() -> Self {
        Self {
            directory: "db/migrations".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservabilitySection {
    pub enabled: bool,
    pub log_retention: String,
}

impl Default for ObservabilitySection {
    fn default() -> Self {
        Self {
            enabled: true,
            log_retention: "744h".into(),
        }
    }
}

/// Loopback ports of the `local` target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortsSection {
    pub postgres: u16,
    pub pooler: u16,
    pub postgate: u16,
    pub grafana: u16,
}

impl Default for PortsSection {
    fn default() -> Self {
        Self {
            postgres: 5432,
            pooler: 6432,
            postgate: 8080,
            grafana: 3000,
        }
    }
}

/// Every image, pinned to a tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesSection {
    pub postgres: String,
    pub pgbouncer: String,
    pub pgcat: String,
    pub stackctl: String,
    pub postgate: String,
    pub runner: String,
    pub loki: String,
    pub alloy: String,
    pub grafana: String,
}

impl Default for ImagesSection {
    fn default() -> Self {
        let v = env!("CARGO_PKG_VERSION");
        Self {
            postgres: "stackctl/postgres:17".into(),
            pgbouncer: "stackctl/pgbouncer:1.24".into(),
            pgcat: "ghcr.io/postgresml/pgcat:v1.2.0".into(),
            stackctl: format!("stackctl/stackctl:{v}"),
            postgate: format!("stackctl/postgate:{v}"),
            runner: format!("stackctl/runner:{v}"),
            loki: "grafana/loki:3.7.0".into(),
            alloy: "grafana/alloy:v1.18.0".into(),
            grafana: "grafana/grafana:13.1.0".into(),
        }
    }
}

/// The validated stack: configuration plus the paths it lives at.
#[derive(Debug, Clone)]
pub struct Stack {
    pub dir: PathBuf,
    pub file: StackFile,
    /// Resolved host names (defaults filled in).
    pub hosts: Hosts,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hosts {
    pub postgate: String,
    pub runner: String,
    pub workers: String,
    pub grafana: String,
}

impl Stack {
    /// Loads `stack.toml` from `dir` (defaults when absent) and validates it.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(STACK_FILE);
        let (file, text) = match fs::read_to_string(&path) {
            Ok(text) => (parse_stack_file(&text, &path)?, Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (StackFile::default(), None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Self::build(dir, file, text.as_deref())
    }

    /// Validates a `StackFile` and resolves its derived values.
    pub fn from_file(dir: &Path, file: StackFile) -> Result<Self> {
        Self::build(dir, file, None)
    }

    /// Validates `file`; given the file's `text`, an error also names the line of the bad key.
    fn build(dir: &Path, file: StackFile, text: Option<&str>) -> Result<Self> {
        let where_ = dir.join(STACK_FILE);
        validate(&file).map_err(|(key, e)| {
            let line = key.and_then(|k| text.and_then(|t| line_of_key(t, k)));
            let at = line.map(|l| format!(":{l}")).unwrap_or_default();
            UserError::new(format!("{}{at}: {}", where_.display(), e.message))
                .hint(e.hint.unwrap_or_default())
        })?;
        let d = &file.project.domain;
        let pick = |set: &str, default: String| {
            if set.is_empty() {
                default
            } else {
                set.to_string()
            }
        };
        let hosts = Hosts {
            postgate: pick(&file.domains.postgate, format!("postgate.{d}")),
            runner: pick(&file.domains.runner, format!("runner.{d}")),
            workers: pick(&file.domains.workers, format!("workers.{d}")),
            grafana: pick(&file.domains.grafana, format!("grafana.{d}")),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            hosts,
        })
    }

    pub fn env_path(&self) -> PathBuf {
        self.dir.join(ENV_FILE)
    }

    /// Loads `.env` and checks that it holds every secret.
    pub fn load_env(&self) -> Result<EnvFile> {
        let env = EnvFile::load(&self.env_path())?;
        env.require_all()?;
        Ok(env)
    }

    pub fn project(&self) -> &str {
        &self.file.project.name
    }

    pub fn pooler(&self) -> PoolerKind {
        self.file.pooler.kind
    }
}

/// Parses `stack.toml` text; errors name the key and the line.
pub fn parse_stack_file(text: &str, path: &Path) -> Result<StackFile> {
    toml::from_str::<StackFile>(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
        let at = line.map(|l| format!(":{l}")).unwrap_or_default();
        // Name the setting too (`pooler.kind: unknown variant ...`): toml's message only has the value.
        let key = line.and_then(|l| key_at_line(text, l)).map(|k| format!("{k}: ")).unwrap_or_default();
        UserError::new(format!("{}{at}: {key}{}", path.display(), e.message().trim_end()))
            .hint("fix or remove that line; `stackctl init` in an empty directory writes a stack.toml with every key")
            .into()
    })
}

/// `section.key` of the `key = value` line `line` (1-based) of a TOML text, if it is one.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if let Some(h) = t.strip_prefix('[') {
            section = h.split(']').next().unwrap_or("").trim().to_string();
        }
        if i + 1 == line {
            if t.starts_with('#') || t.starts_with('[') {
                return None;
            }
            let k = t.split_once('=')?.0.trim().trim_matches('"');
            if k.is_empty() {
                return None;
            }
            return Some(if section.is_empty() {
                k.to_string()
            } else {
                format!("{section}.{k}")
            });
        }
    }
    None
}

/// The line (1-based) where `section.key` is set in a TOML text.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    (1..=text.lines().count()).find(|&l| key_at_line(text, l).as_deref() == Some(dotted))
}

/// A validation error, with the `section.key` it is about (to find its line).
type Invalid = (Option<&'static str>, UserError);

fn validate(f: &StackFile) -> std::result::Result<(), Invalid> {
    let at = |key: &'static str| move |e: UserError| (Some(key), e);
    let name = &f.project.name;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(at("project.name")(
            UserError::new(format!(
                "project.name `{name}` is not a valid Compose project name"
            ))
            .hint("use lowercase letters, digits, `-` and `_`, starting with a letter or digit"),
        ));
    }
    check_domain("project.domain", &f.project.domain).map_err(at("project.domain"))?;
    for (key, value) in [
        ("domains.postgate", &f.domains.postgate),
        ("domains.runner", &f.domains.runner),
        ("domains.workers", &f.domains.workers),
        ("domains.grafana", &f.domains.grafana),
    ] {
        if !value.is_empty() {
            check_domain(key, value).map_err(at(key))?;
        }
    }
    check_ident("postgres.database", &f.postgres.database).map_err(at("postgres.database"))?;
    let p = &f.pooler;
    if p.pool_size == 0 || p.min_pool_size > p.pool_size || p.max_client_conn < p.pool_size {
        return Err(at("pooler.pool_size")(UserError::new(format!(
            "pooler sizes do not fit: pool_size {} must be ≥ 1, ≥ min_pool_size {} and ≤ max_client_conn {}",
            p.pool_size, p.min_pool_size, p.max_client_conn
        ))));
    }
    if p.pool_mode == PoolMode::Transaction && !(1..=100_000).contains(&p.prepared_statements) {
        return Err(at("pooler.prepared_statements")(UserError::new(format!(
            "pooler.prepared_statements is {}: a transaction-mode pool needs a prepared-statement cache of 1 to 100000, or clients' named prepared statements fail",
            p.prepared_statements
        ))));
    }
    let g = &f.postgate;
    for (key, value, max) in [
        ("postgate.max_body_bytes", g.max_body_bytes, 1u64 << 30),
        ("postgate.max_rows", g.max_rows, 10_000_000),
        ("postgate.max_response_bytes", g.max_response_bytes, 1 << 30),
        (
            "postgate.statement_timeout_ms",
            g.statement_timeout_ms,
            3_600_000,
        ),
        ("postgate.max_batch", u64::from(g.max_batch), 10_000),
        ("postgate.pool_size", u64::from(g.pool_size), 1_000),
    ] {
        if !(1..=max).contains(&value) {
            return Err(at(key)(UserError::new(format!(
                "{key} is {value}; it must be between 1 and {max}"
            ))));
        }
    }
    if !(1..=64).contains(&f.runner.replicas) {
        return Err(at("runner.replicas")(UserError::new(format!(
            "runner.replicas is {}; it must be between 1 and 64",
            f.runner.replicas
        ))));
    }
    let r = &f.runner;
    for (k, v) in [
        ("runner.cpu_ms", r.cpu_ms),
        ("runner.memory_mb", r.memory_mb),
        ("runner.wall_ms", r.wall_ms),
        ("runner.concurrency", r.concurrency),
    ] {
        if v == 0 || v > i32::MAX as u32 {
            return Err(at(k)(UserError::new(format!(
                "{k} is {v}; it must be a positive number"
            ))));
        }
    }
    if r.max_body_bytes > i32::MAX as u32 {
        return Err(at("runner.max_body_bytes")(UserError::new(
            "runner.max_body_bytes must be below 2 GiB",
        )));
    }
    let ports = [
        ("ports.postgres", f.ports.postgres),
        ("ports.pooler", f.ports.pooler),
        ("ports.postgate", f.ports.postgate),
        ("ports.grafana", f.ports.grafana),
    ];
    for (i, (k, v)) in ports.iter().enumerate() {
        if *v == 0 {
            return Err(at(k)(UserError::new(format!(
                "{k} is 0; choose a port from 1 to 65535"
            ))));
        }
        if let Some((k2, _)) = ports[..i].iter().find(|(_, v2)| v2 == v) {
            return Err(at(k)(UserError::new(format!(
                "{k} and {k2} are both {v}; each service needs its own port"
            ))));
        }
    }
    let images = &f.images;
    for (k, v) in [
        ("images.postgres", &images.postgres),
        ("images.pgbouncer", &images.pgbouncer),
        ("images.pgcat", &images.pgcat),
        ("images.stackctl", &images.stackctl),
        ("images.postgate", &images.postgate),
        ("images.runner", &images.runner),
        ("images.loki", &images.loki),
        ("images.alloy", &images.alloy),
        ("images.grafana", &images.grafana),
    ] {
        // The tag follows the last `:` of the last path segment (a registry host may carry a port).
        let tagged = v
            .rsplit('/')
            .next()
            .and_then(|last| last.split_once(':'))
            .is_some_and(|(_, t)| !t.is_empty());
        if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '$') || !tagged {
            return Err(at(k)(
                UserError::new(format!("{k} `{v}` is not a pinned image reference"))
                    .hint("write it as `repository:tag`, e.g. `grafana/loki:3.7.0`"),
            ));
        }
    }
    let m = Path::new(&f.migrations.directory);
    if f.migrations.directory.is_empty()
        || m.is_absolute()
        || m.components().any(|c| c == std::path::Component::ParentDir)
    {
        return Err(at("migrations.directory")(UserError::new(format!(
            "migrations.directory `{}` must be a relative path inside the stack directory",
            f.migrations.directory
        ))));
    }
    let r = &f.observability.log_retention;
    if !(r.len() > 1 && r.ends_with('h') && r[..r.len() - 1].bytes().all(|b| b.is_ascii_digit())) {
        return Err(at("observability.log_retention")(UserError::new(format!(
            "observability.log_retention `{r}` must be a number of hours, like `744h`"
        ))));
    }
    Ok(())
}

/// Checks a DNS host name (RFC 1123 labels).
pub fn check_domain(key: &str, value: &str) -> std::result::Result<(), UserError> {
    let bad = |why: &str| {
        UserError::new(format!("{key} `{value}` is not a valid domain: {why}"))
            .hint("use a host name such as `example.com` (letters, digits and `-` in dot-separated labels)")
    };
    if value.is_empty() || value.len() > 253 {
        return Err(bad("it must be 1 to 253 characters long"));
    }
    for label in value.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each label must be 1 to 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label cannot start or end with `-`"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad("only letters, digits and `-` are allowed"));
        }
    }
    Ok(())
}

fn check_ident(key: &str, value: &str) -> std::result::Result<(), UserError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(UserError::new(format!(
            "{key} `{value}` must be a lowercase SQL identifier ([a-z_][a-z0-9_]*)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let s = Stack::from_file(Path::new("/x"), StackFile::default()).unwrap();
        assert_eq!(s.hosts.grafana, "grafana.localhost");
        assert_eq!(s.file.runner.replicas, 3);
        assert_eq!(s.pooler(), PoolerKind::Pgcat);
        assert_eq!(s.file.postgate.max_rows, 10_000);
    }

    #[test]
    fn postgate_limits_are_checked_with_their_line() {
        let text = "[postgate]\nmax_rows = 10\npool_size = 0\n";
        let file = parse_stack_file(text, Path::new("stack.toml")).unwrap();
        let err = Stack::build(Path::new("."), file, Some(text))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stack.toml:3: postgate.pool_size is 0"),
            "{err}"
        );
        let err = parse_stack_file("[postgate]\nmax_row = 1\n", Path::new("stack.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stack.toml:2") && err.contains("max_row"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[project]\nname = \"a\"\n\n[pooler]\nkind = \"pgcat\"\nsizes = 3\n";
        let err = parse_stack_file(text, Path::new("stack.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("stack.toml:6"), "{err}");
        assert!(err.contains("sizes"), "{err}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let text = "[project]\nname = \"a\"\n\n[pooler]\nkind = \"nope\"\n";
        let err = parse_stack_file(text, Path::new("stack.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("stack.toml:5: pooler.kind:"), "{err}");
        let text = "[project]\nname = \"a\"\ndomain = \"bad_domain!\"\n";
        let file = parse_stack_file(text, Path::new("stack.toml")).unwrap();
        let err = Stack::build(Path::new("."), file, Some(text))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stack.toml:3: project.domain `bad_domain!`"),
            "{err}"
        );
    }

    #[test]
    fn domains_are_checked() {
        assert!(check_domain("d", "example.com").is_ok());
        assert!(check_domain("d", "a-b.example.com").is_ok());
        for bad in ["", "exa mple.com", "-a.com", "a..com", "a_b.com", "a.com/x"] {
            assert!(check_domain("d", bad).is_err(), "{bad}");
        }
    }
}
