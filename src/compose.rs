//! The subset of the Compose specification that our templates use, read back from the rendered
//! file, with `${VAR}` interpolation done the way Compose does it.
//!
//! Anything outside the subset is refused with the key and the service named: the engine never
//! silently ignores part of the file it was asked to run. Interpolation happens on the YAML tree
//! (values only, never keys) before the typed parse, like Compose. Variables come from `.env`,
//! overridden by the process environment (Compose's precedence).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indexmap::IndexMap;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_yaml::Value;

use crate::error::UserError;

/// The parsed, interpolated Compose file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    #[serde(default)]
    pub name: Option<String>,
    pub services: IndexMap<String, Service>,
    #[serde(default, deserialize_with = "null_as_default_map")]
    pub networks: IndexMap<String, TopNetwork>,
    #[serde(default, deserialize_with = "null_as_default_map")]
    pub volumes: IndexMap<String, TopVolume>,
    #[serde(default)]
    pub configs: IndexMap<String, TopConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopNetwork {
    #[serde(default)]
    pub external: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopVolume {}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopConfig {
    pub file: String,
}

/// One service, in the subset we implement.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub image: String,
    #[serde(default, deserialize_with = "de_command")]
    pub command: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_command")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_env")]
    pub environment: IndexMap<String, Option<String>>,
    #[serde(default, deserialize_with = "de_volumes")]
    pub volumes: Vec<VolumeMount>,
    #[serde(default)]
    pub configs: Vec<ServiceConfig>,
    #[serde(default, deserialize_with = "de_ports")]
    pub ports: Vec<PortSpec>,
    #[serde(default, deserialize_with = "de_networks")]
    pub networks: IndexMap<String, ServiceNetwork>,
    #[serde(default, deserialize_with = "de_depends_on")]
    pub depends_on: IndexMap<String, DependsOn>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub restart: Option<Restart>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub stop_grace_period: Option<Duration>,
    #[serde(default)]
    pub deploy: Option<Deploy>,
    #[serde(default, deserialize_with = "de_labels")]
    pub labels: IndexMap<String, String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "de_expose")]
    pub expose: Vec<String>,
}

pub const GROUP_LABEL: &str = "dev.stackctl.group";

impl Service {
    pub fn replicas(&self) -> u32 {
        self.deploy.as_ref().and_then(|d| d.replicas).unwrap_or(1)
    }

    pub fn group(&self) -> Option<&str> {
        self.labels.get(GROUP_LABEL).map(String::as_str)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    #[serde(default)]
    pub replicas: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Restart {
    #[serde(rename = "no")]
    No,
    #[serde(rename = "always")]
    Always,
    #[serde(rename = "on-failure")]
    OnFailure,
    #[serde(rename = "unless-stopped")]
    UnlessStopped,
}

/// `configs:` entry of a service, long syntax.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub source: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub mode: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub uid: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub gid: Option<u64>,
}

impl ServiceConfig {
    /// Where the file lands in the container (Compose's default: `/<source>`).
    pub fn target_path(&self) -> String {
        self.target
            .clone()
            .unwrap_or_else(|| format!("/{}", self.source))
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // the names are Compose's
pub enum Condition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::ServiceStarted => "service_started",
            Condition::ServiceHealthy => "service_healthy",
            Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DependsOn {
    pub condition: Condition,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    #[serde(deserialize_with = "de_health_test")]
    pub test: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub start_period: Option<Duration>,
}

impl Healthcheck {
    /// The command to exec for a readiness probe: `None` for `NONE`.
    pub fn exec_command(&self) -> Option<Vec<String>> {
        match self.test.first().map(String::as_str) {
            Some("CMD") => Some(self.test[1..].to_vec()),
            Some("CMD-SHELL") => Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                self.test[1..].join(" "),
            ]),
            _ => None,
        }
    }
}

/// A `volumes:` entry (short syntax).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeMount {
    pub source: VolumeSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum VolumeSource {
    /// A volume declared in the top-level `volumes:`.
    Named(String),
    /// A host path as written (relative paths are resolved against the project directory).
    Bind(String),
}

/// A `ports:` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortSpec {
    pub host_ip: Option<String>,
    /// `None`: an ephemeral port chosen by Docker.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: String,
}

impl PortSpec {
    pub fn describe(&self) -> String {
        let ip = self.host_ip.as_deref().unwrap_or("0.0.0.0");
        match self.host_port {
            Some(p) => format!("{ip}:{p}"),
            None => format!("{ip}:<ephemeral>"),
        }
    }
}

/// The project as the engine runs it: the file, its directory and its name.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub working_dir: PathBuf,
    pub config_file: PathBuf,
    pub file: ComposeFile,
}

impl Project {
    /// Reads, interpolates and checks a Compose file.
    pub fn load(
        path: &Path,
        vars: &BTreeMap<String, String>,
        default_name: &str,
    ) -> Result<Project> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file = parse(&text, vars).map_err(|e| {
            let mut u = UserError::new(format!("{}: {e:#}", path.display()));
            u.hint = crate::error::hint_of(&e).map(str::to_string);
            anyhow!(u)
        })?;
        let working_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let working_dir = std::fs::canonicalize(&working_dir).unwrap_or(working_dir);
        let config_file = working_dir.join(path.file_name().unwrap_or_default());
        let name = file
            .name
            .clone()
            .unwrap_or_else(|| default_name.to_string());
        Ok(Project {
            name,
            working_dir,
            config_file,
            file,
        })
    }

    /// Absolute host path of a bind mount or config file written relative to the project.
    pub fn host_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.working_dir.join(p)
        }
    }

    /// The services to run: `only` (plus what they depend on), minus the services of `without` groups.
    pub fn select(&self, only: &[String], without: &[String]) -> Result<Vec<String>> {
        let services = &self.file.services;
        for s in only {
            if !services.contains_key(s) {
                let known: Vec<&str> = services.keys().map(String::as_str).collect();
                bail!(
                    UserError::new(format!("no service `{s}` in the Compose file"))
                        .hint(format!("services: {}", known.join(", ")))
                );
            }
        }
        let mut groups: Vec<&str> = vec!["core", "apps", "observability"];
        groups.extend(services.values().filter_map(Service::group));
        for w in without {
            if !groups.contains(&w.as_str()) {
                groups.sort();
                groups.dedup();
                bail!(
                    UserError::new(format!("--without {w}: there is no group `{w}`"))
                        .hint(format!("groups: {}", groups.join(", ")))
                );
            }
        }
        let mut chosen: Vec<String> = Vec::new();
        let mut stack: Vec<String> = if only.is_empty() {
            services.keys().cloned().collect()
        } else {
            only.to_vec()
        };
        while let Some(s) = stack.pop() {
            if chosen.contains(&s) {
                continue;
            }
            let svc = &services[&s];
            if only.is_empty() && svc.group().is_some_and(|g| without.iter().any(|w| w == g)) {
                continue;
            }
            stack.extend(svc.depends_on.keys().cloned());
            chosen.push(s);
        }
        // A service that a kept service depends on cannot be left out.
        for s in &chosen {
            for d in services[s].depends_on.keys() {
                if let Some(g) = services[d]
                    .group()
                    .filter(|g| without.iter().any(|w| w == g))
                {
                    bail!(UserError::new(format!(
                        "service `{s}` depends on `{d}`, which is in the group `{g}` left out by --without {g}"
                    )));
                }
            }
        }
        Ok(services
            .keys()
            .filter(|k| chosen.contains(k))
            .cloned()
            .collect())
    }
}

/// Parses and interpolates Compose text.
pub fn parse(text: &str, vars: &BTreeMap<String, String>) -> Result<ComposeFile> {
    let mut value: Value = serde_yaml::from_str(text).context("the file is not valid YAML")?;
    interpolate_value(&mut value, vars, "")?;
    let file: ComposeFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let service = path.strip_prefix("services.").and_then(|rest| rest.split('.').next());
        if let Some(key) = inner.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
            let wher = match service {
                Some(s) if path == format!("services.{s}") || path == format!("services.{s}.{key}") => format!("service `{s}`"),
                Some(s) => format!("`{path}` (service `{s}`)"),
                None if path.is_empty() || path == "." || path == key => "the top level".to_string(),
                None => format!("`{path}`"),
            };
            anyhow!(
                UserError::new(format!("unsupported Compose key `{key}` in {wher}: stackctl's engine does not implement it"))
                    .hint("remove the key, or run this file with `docker compose` instead")
            )
        } else {
            anyhow!("{path}: {inner}")
        }
    })?;
    check(&file)?;
    Ok(file)
}

fn check(f: &ComposeFile) -> Result<()> {
    for (name, s) in &f.services {
        for d in s.depends_on.keys() {
            if !f.services.contains_key(d) {
                bail!("service `{name}` depends on `{d}`, which is not a service of the file");
            }
            if s.depends_on[d].condition == Condition::ServiceHealthy
                && f.services[d].healthcheck.is_none()
            {
                bail!(
                    "service `{name}` waits for `{d}` to be healthy, but `{d}` has no healthcheck"
                );
            }
        }
        for n in s.networks.keys() {
            if !f.networks.contains_key(n) {
                bail!(
                    "service `{name}` uses network `{n}`, which is not declared under top-level `networks`"
                );
            }
        }
        for v in &s.volumes {
            if let VolumeSource::Named(v) = &v.source
                && !f.volumes.contains_key(v)
            {
                bail!(
                    "service `{name}` uses volume `{v}`, which is not declared under top-level `volumes`"
                );
            }
        }
        for c in &s.configs {
            if !f.configs.contains_key(&c.source) {
                bail!(
                    "service `{name}` uses config `{}`, which is not declared under top-level `configs`",
                    c.source
                );
            }
        }
    }
    // depends_on must be acyclic.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(f: &'a ComposeFile, s: &'a str, state: &mut BTreeMap<&'a str, u8>) -> Result<()> {
        match state.get(s) {
            Some(2) => return Ok(()),
            Some(1) => bail!("depends_on has a cycle through service `{s}`"),
            _ => {}
        }
        state.insert(s, 1);
        for d in f.services[s].depends_on.keys() {
            visit(f, d, state)?;
        }
        state.insert(s, 2);
        Ok(())
    }
    for s in f.services.keys() {
        visit(f, s, &mut state)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Interpolation

fn interpolate_value(v: &mut Value, vars: &BTreeMap<String, String>, path: &str) -> Result<()> {
    match v {
        Value::String(s) => {
            *s = interpolate(s, vars).with_context(|| format!("interpolating `{path}`"))?;
        }
        Value::Sequence(seq) => {
            for (i, item) in seq.iter_mut().enumerate() {
                interpolate_value(item, vars, &format!("{path}[{i}]"))?;
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let p = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                interpolate_value(item, vars, &p)?;
            }
        }
        Value::Tagged(t) => interpolate_value(&mut t.value, vars, path)?,
        _ => {}
    }
    Ok(())
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Interpolates one string: `$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`,
/// `${VAR:+r}`, `${VAR+r}`; defaults may themselves hold `${...}`.
pub fn interpolate(s: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                // Find the matching brace (defaults may nest `${...}`).
                let mut depth = 1;
                let mut j = i + 2;
                while j < chars.len() && depth > 0 {
                    match chars[j] {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                if depth != 0 {
                    bail!("invalid interpolation format in {s:?}: `${{` without a closing `}}`");
                }
                let inner: String = chars[i + 2..j - 1].iter().collect();
                out.push_str(&braced(&inner, vars, s)?);
                i = j;
            }
            Some(&c2) if is_name_start(c2) => {
                let mut j = i + 1;
                while j < chars.len() && is_name_char(chars[j]) {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
                i = j;
            }
            _ => bail!(
                "invalid interpolation format in {s:?}: a lone `$` (write `$$` for a literal dollar sign)"
            ),
        }
    }
    Ok(out)
}

fn braced(inner: &str, vars: &BTreeMap<String, String>, whole: &str) -> Result<String> {
    let name_len = inner
        .char_indices()
        .find(|&(_, c)| !is_name_char(c))
        .map(|(i, _)| i)
        .unwrap_or(inner.len());
    let name = &inner[..name_len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        bail!(
            "invalid interpolation format in {whole:?}: `${{{inner}}}` has no valid variable name"
        );
    }
    let rest = &inner[name_len..];
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = rest.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = rest.strip_prefix('?') {
        ("?", a)
    } else if let Some(a) = rest.strip_prefix('+') {
        ("+", a)
    } else if rest.is_empty() {
        ("", "")
    } else {
        bail!("invalid interpolation format in {whole:?}: `${{{inner}}}`");
    };
    let arg = || interpolate(arg, vars);
    Ok(match op {
        "" => value.cloned().unwrap_or_default(),
        ":-" => {
            if set_nonempty {
                value.cloned().unwrap_or_default()
            } else {
                arg()?
            }
        }
        "-" => match value {
            Some(v) => v.clone(),
            None => arg()?,
        },
        ":?" => {
            if set_nonempty {
                value.cloned().unwrap_or_default()
            } else {
                bail!(UserError::new(format!(
                    "required variable {name} is missing a value: {}",
                    arg()?
                )))
            }
        }
        "?" => match value {
            Some(v) => v.clone(),
            None => bail!(UserError::new(format!(
                "required variable {name} is missing a value: {}",
                arg()?
            ))),
        },
        ":+" => {
            if set_nonempty {
                arg()?
            } else {
                String::new()
            }
        }
        _ => {
            if value.is_some() {
                arg()?
            } else {
                String::new()
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Field parsers (the short and long forms Compose accepts)

fn null_as_default_map<'de, D, T>(d: D) -> Result<IndexMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let m: IndexMap<String, Option<T>> = IndexMap::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn de_command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => split_shell(&s).map(Some).map_err(D::Error::custom),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| scalar_string(i).ok_or_else(|| D::Error::custom("each item must be a string")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(D::Error::custom("expected a string or a list of strings")),
    }
}

/// Splits a command string like a POSIX shell would for plain words and quotes.
pub fn split_shell(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("unclosed single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err(format!("unclosed double quote in {s:?}")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("unclosed double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn de_env<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, Option<String>>, D::Error> {
    let mut out = IndexMap::new();
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let k = scalar_string(&k)
                    .ok_or_else(|| D::Error::custom("environment keys must be strings"))?;
                let v = match v {
                    Value::Null => None,
                    v => Some(scalar_string(&v).ok_or_else(|| {
                        D::Error::custom(format!("environment `{k}` must be a scalar"))
                    })?),
                };
                out.insert(k, v);
            }
        }
        Some(Value::Sequence(items)) => {
            for i in items {
                let s = scalar_string(&i)
                    .ok_or_else(|| D::Error::custom("environment entries must be strings"))?;
                match s.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(s, None),
                };
            }
        }
        Some(_) => {
            return Err(D::Error::custom(
                "environment must be a map or a list of KEY=VALUE",
            ));
        }
    }
    Ok(out)
}

fn de_labels<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, String>, D::Error> {
    Ok(de_env(d)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

fn de_volumes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<VolumeMount>, D::Error> {
    let items: Vec<Value> = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => parse_volume(s).map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "only the short volume syntax (`source:target[:ro]`) is supported",
            )),
        })
        .collect()
}

pub fn parse_volume(s: &str) -> Result<VolumeMount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [src, tgt] => (*src, *tgt, None),
        [src, tgt, mode] => (*src, *tgt, Some(*mode)),
        [_] => {
            return Err(format!(
                "volume `{s}`: anonymous volumes are not supported; name it"
            ));
        }
        _ => return Err(format!("volume `{s}` is not `source:target[:ro|rw]`")),
    };
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(m) => {
            return Err(format!(
                "volume `{s}`: mode `{m}` is not supported (ro or rw)"
            ));
        }
    };
    if !target.starts_with('/') {
        return Err(format!("volume `{s}`: the target must be an absolute path"));
    }
    let source = if source.starts_with('.') || source.starts_with('/') {
        VolumeSource::Bind(source.to_string())
    } else if source.starts_with('~') {
        return Err(format!("volume `{s}`: `~` paths are not supported"));
    } else {
        VolumeSource::Named(source.to_string())
    };
    Ok(VolumeMount {
        source,
        target: target.to_string(),
        read_only,
    })
}

fn de_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PortSpec>, D::Error> {
    let items: Vec<Value> = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    items
        .iter()
        .map(|v| {
            let s = scalar_string(v)
                .ok_or_else(|| D::Error::custom("only the short port syntax is supported"))?;
            parse_port(&s).map_err(D::Error::custom)
        })
        .collect()
}

/// `[IP:][HOST:]CONTAINER[/PROTO]`; `IP::CONTAINER` asks for an ephemeral host port.
pub fn parse_port(s: &str) -> Result<PortSpec, String> {
    let (body, protocol) = match s.rsplit_once('/') {
        Some((b, p)) if p == "tcp" || p == "udp" => (b, p.to_string()),
        Some(_) => return Err(format!("port `{s}`: protocol must be tcp or udp")),
        None => (s, "tcp".to_string()),
    };
    let num = |p: &str| {
        p.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("port `{s}`: `{p}` is not a port number (ranges are not supported)")
        })
    };
    let parts: Vec<&str> = body.split(':').collect();
    let (host_ip, host_port, container) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(num(h)?), *c),
        [ip, h, c] => (
            Some(ip.to_string()),
            if h.is_empty() { None } else { Some(num(h)?) },
            *c,
        ),
        _ => return Err(format!("port `{s}` is not `[IP:][HOST:]CONTAINER`")),
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port: num(container)?,
        protocol,
    })
}

fn de_networks<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, ServiceNetwork>, D::Error> {
    let mut out = IndexMap::new();
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for i in items {
                let n = scalar_string(&i)
                    .ok_or_else(|| D::Error::custom("network names must be strings"))?;
                out.insert(n, ServiceNetwork::default());
            }
        }
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let k = scalar_string(&k)
                    .ok_or_else(|| D::Error::custom("network names must be strings"))?;
                let net = match v {
                    Value::Null => ServiceNetwork::default(),
                    v => serde_yaml::from_value::<ServiceNetwork>(v).map_err(|e| {
                        D::Error::custom(format!(
                            "network `{k}`: {e} (stackctl's engine implements `aliases` only)"
                        ))
                    })?,
                };
                out.insert(k, net);
            }
        }
        Some(_) => return Err(D::Error::custom("networks must be a list or a map")),
    }
    Ok(out)
}

fn de_depends_on<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, DependsOn>, D::Error> {
    let mut out = IndexMap::new();
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for i in items {
                let n = scalar_string(&i)
                    .ok_or_else(|| D::Error::custom("service names must be strings"))?;
                out.insert(
                    n,
                    DependsOn {
                        condition: Condition::ServiceStarted,
                    },
                );
            }
        }
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let k = scalar_string(&k)
                    .ok_or_else(|| D::Error::custom("service names must be strings"))?;
                let dep = serde_yaml::from_value::<DependsOn>(v).map_err(|e| {
                    D::Error::custom(format!(
                        "depends_on `{k}`: {e} (stackctl's engine implements `condition` only)"
                    ))
                })?;
                out.insert(k, dep);
            }
        }
        Some(_) => return Err(D::Error::custom("depends_on must be a list or a map")),
    }
    Ok(out)
}

fn de_health_test<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(vec!["CMD-SHELL".into(), s]),
        Value::Sequence(items) => {
            let v: Vec<String> = items
                .iter()
                .map(|i| {
                    scalar_string(i).ok_or_else(|| D::Error::custom("test items must be strings"))
                })
                .collect::<Result<_, _>>()?;
            match v.first().map(String::as_str) {
                Some("CMD") | Some("CMD-SHELL") if v.len() >= 2 => Ok(v),
                Some("NONE") => Ok(v),
                _ => Err(D::Error::custom(
                    "healthcheck test must start with CMD, CMD-SHELL or NONE",
                )),
            }
        }
        _ => Err(D::Error::custom(
            "healthcheck test must be a string or a list",
        )),
    }
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let s = scalar_string(&v)
                .ok_or_else(|| D::Error::custom("expected a duration like `30s`"))?;
            parse_duration(&s).map(Some).map_err(D::Error::custom)
        }
    }
}

/// Go-style durations as Compose writes them: `1m30s`, `500ms`, `3s`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration like `30s`, `1m30s` or `500ms`");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let n_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..n_len].parse().map_err(|_| bad())?;
        rest = &rest[n_len..];
        let u_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..u_len];
        rest = &rest[u_len..];
        let secs = match unit {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
    }
    Ok(total)
}

fn de_opt_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        // YAML 1.1 reads `0444` as octal but serde_yaml reads it as decimal 444: treat the digits
        // as octal, the way Compose users mean them.
        Some(Value::Number(n)) => {
            let digits = n.to_string();
            u32::from_str_radix(&digits, 8)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("mode `{digits}` is not octal")))
        }
        Some(Value::String(s)) => {
            let t = s.trim_start_matches("0o");
            u32::from_str_radix(t, 8)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("mode `{s}` is not octal")))
        }
        Some(_) => Err(D::Error::custom("mode must be an octal number like 0444")),
    }
}

fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar_string(&v)
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom("uid/gid must be a number")),
    }
}

fn de_expose<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items: Vec<Value> = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    items
        .iter()
        .map(|v| {
            let s =
                scalar_string(v).ok_or_else(|| D::Error::custom("expose entries must be ports"))?;
            let (p, proto) = s.split_once('/').unwrap_or((&s, "tcp"));
            p.parse::<u16>()
                .map_err(|_| D::Error::custom(format!("expose `{s}` is not a port")))?;
            Ok(format!("{p}/{proto}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn interpolation_matches_compose() {
        let v = vars(&[("A", "x"), ("E", "")]);
        let i = |s: &str| interpolate(s, &v).map_err(|e| e.to_string());
        assert_eq!(i("${A}").unwrap(), "x");
        assert_eq!(i("$A-$A").unwrap(), "x-x");
        assert_eq!(i("${B:-d}").unwrap(), "d");
        assert_eq!(i("${E:-d}").unwrap(), "d");
        assert_eq!(i("${E-d}").unwrap(), "");
        assert_eq!(i("${B-d}").unwrap(), "d");
        assert_eq!(i("${A:-d}").unwrap(), "x");
        assert_eq!(i("${B:-${A}y}").unwrap(), "xy");
        assert_eq!(i("$$A and $${A}").unwrap(), "$A and ${A}");
        assert_eq!(i("${A:+r}|${E:+r}|${E+r}|${B+r}").unwrap(), "r||r|");
        assert_eq!(i("${B}").unwrap(), "");
        assert_eq!(i("${E?e}").unwrap(), "");
        assert!(i("${E:?need E}").unwrap_err().contains("need E"));
        assert!(
            i("${B?need B}")
                .unwrap_err()
                .contains("required variable B")
        );
        assert!(i("${A").is_err());
        assert!(i("cost $ 5").is_err());
        assert!(i("${1A}").is_err());
    }

    const SMALL: &str = r#"
name: demo
services:
  db:
    image: debian:trixie-slim
    command: sleep infinity
    environment:
      PASSWORD: ${PW:?set PW}
      PORT: 5432
    volumes: ["data:/data", "./conf:/conf:ro"]
    ports: ["127.0.0.1:5432:5432", "127.0.0.1::8787"]
    healthcheck:
      test: ["CMD-SHELL", "true"]
      interval: 1m30s
      start_period: 500ms
    deploy: {replicas: 2}
    stop_grace_period: 10s
    configs:
      - source: c
        target: /etc/c
        mode: 0400
    networks:
      net:
        aliases: [pooler]
    labels:
      dev.stackctl.group: core
  job:
    image: debian:trixie-slim
    command: ["true"]
    restart: "no"
    environment: ["A=1", "B"]
    depends_on:
      db: {condition: service_healthy}
networks:
  net: {}
volumes:
  data:
configs:
  c:
    file: ./c.txt
"#;

    #[test]
    fn parses_the_subset() {
        let f = parse(SMALL, &vars(&[("PW", "s3cret")])).unwrap();
        let db = &f.services["db"];
        assert_eq!(db.command.as_deref().unwrap(), ["sleep", "infinity"]);
        assert_eq!(db.environment["PASSWORD"].as_deref(), Some("s3cret"));
        assert_eq!(db.environment["PORT"].as_deref(), Some("5432"));
        assert_eq!(db.volumes[0].source, VolumeSource::Named("data".into()));
        assert_eq!(
            db.volumes[1],
            VolumeMount {
                source: VolumeSource::Bind("./conf".into()),
                target: "/conf".into(),
                read_only: true
            }
        );
        assert_eq!(db.ports[1].host_port, None);
        assert_eq!(db.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
        let hc = db.healthcheck.as_ref().unwrap();
        assert_eq!(hc.interval, Some(Duration::from_secs(90)));
        assert_eq!(hc.start_period, Some(Duration::from_millis(500)));
        assert_eq!(db.configs[0].mode, Some(0o400));
        assert_eq!(db.networks["net"].aliases, ["pooler"]);
        assert_eq!(db.replicas(), 2);
        assert_eq!(db.group(), Some("core"));
        let job = &f.services["job"];
        assert_eq!(job.restart, Some(Restart::No));
        assert_eq!(job.environment["B"], None);
        assert_eq!(job.depends_on["db"].condition, Condition::ServiceHealthy);
        assert!(f.volumes.contains_key("data"));
    }

    #[test]
    fn missing_required_variable_is_an_error() {
        let err = format!("{:#}", parse(SMALL, &vars(&[])).unwrap_err());
        assert!(
            err.contains("required variable PW") && err.contains("set PW"),
            "{err}"
        );
        assert!(err.contains("services.db.environment.PASSWORD"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_with_service_and_key() {
        let text = SMALL.replace(
            "    restart: \"no\"\n",
            "    restart: \"no\"\n    privileged: true\n",
        );
        let err = parse(&text, &vars(&[("PW", "x")])).unwrap_err().to_string();
        assert!(
            err.contains("`privileged`") && err.contains("service `job`"),
            "{err}"
        );
        let text = format!("{SMALL}secrets: {{}}\n");
        let err = parse(&text, &vars(&[("PW", "x")])).unwrap_err().to_string();
        assert!(
            err.contains("`secrets`") && err.contains("top level"),
            "{err}"
        );
        let text = SMALL.replace(
            "      interval: 1m30s\n",
            "      interval: 1m30s\n      start_interval: 1s\n",
        );
        let err = parse(&text, &vars(&[("PW", "x")])).unwrap_err().to_string();
        assert!(
            err.contains("`start_interval`") && err.contains("service `db`"),
            "{err}"
        );
        let text = SMALL.replace(
            "        aliases: [pooler]\n",
            "        aliases: [pooler]\n        ipv4_address: 1.2.3.4\n",
        );
        let err = format!("{:#}", parse(&text, &vars(&[("PW", "x")])).unwrap_err());
        assert!(
            err.contains("ipv4_address") && err.contains("services.db.networks"),
            "{err}"
        );
    }

    #[test]
    fn references_are_checked() {
        let text = SMALL.replace(
            "db: {condition: service_healthy}",
            "nope: {condition: service_started}",
        );
        assert!(
            parse(&text, &vars(&[("PW", "x")]))
                .unwrap_err()
                .to_string()
                .contains("`nope`")
        );
        let text = SMALL.replace("\"data:/data\"", "\"other:/data\"");
        assert!(
            parse(&text, &vars(&[("PW", "x")]))
                .unwrap_err()
                .to_string()
                .contains("volume `other`")
        );
    }

    #[test]
    fn ports_volumes_durations() {
        assert_eq!(parse_port("8080").unwrap().host_port, None);
        assert_eq!(
            parse_port("8080:80/udp").unwrap(),
            PortSpec {
                host_ip: None,
                host_port: Some(8080),
                container_port: 80,
                protocol: "udp".into()
            }
        );
        assert!(parse_port("1-2:3").is_err());
        assert!(parse_volume("/data").is_err());
        assert!(parse_volume("a:/b:z").is_err());
        assert_eq!(parse_duration("1h2m3s").unwrap(), Duration::from_secs(3723));
        assert!(parse_duration("3").is_err());
        assert_eq!(
            split_shell(r#"sh -c 'echo "a b"' x\ y"#).unwrap(),
            ["sh", "-c", "echo \"a b\"", "x y"]
        );
    }

    #[test]
    fn select_follows_dependencies_and_groups() {
        let f = parse(SMALL, &vars(&[("PW", "x")])).unwrap();
        let p = Project {
            name: "demo".into(),
            working_dir: "/w".into(),
            config_file: "/w/c.yml".into(),
            file: f,
        };
        assert_eq!(p.select(&["job".into()], &[]).unwrap(), ["db", "job"]);
        assert_eq!(p.select(&[], &[]).unwrap(), ["db", "job"]);
        assert!(
            p.select(&[], &["core".into()])
                .unwrap_err()
                .to_string()
                .contains("depends on `db`")
        );
        assert!(p.select(&["x".into()], &[]).is_err());
        assert_eq!(
            p.select(&[], &["observability".into()]).unwrap(),
            ["db", "job"]
        );
        assert!(
            p.select(&[], &["observabilty".into()])
                .unwrap_err()
                .to_string()
                .contains("no group")
        );
    }

    /// The contract: every file `render` can produce is inside the subset the engine runs.
    #[test]
    fn every_rendered_compose_file_parses() {
        use crate::config::{PoolerKind, StackFile};
        use crate::render::{Target, compose, config_files};
        use crate::secrets::{EnvFile, SECRETS};
        let values: BTreeMap<String, String> = SECRETS
            .iter()
            .map(|s| (s.key.to_string(), "secretvalue123".to_string()))
            .collect();
        let env = EnvFile {
            values: values.clone(),
            ..Default::default()
        };
        for pooler in [PoolerKind::Pgbouncer, PoolerKind::Pgcat] {
            for target in [Target::Local, Target::Dokploy] {
                let mut file = StackFile::default();
                file.pooler.kind = pooler;
                let stack = crate::config::Stack::from_file(Path::new("/tmp/x"), file).unwrap();
                let configs = config_files(&stack, &env).unwrap();
                let text = compose(&stack, target, &configs, "./").unwrap();
                let f = parse(&text, &values)
                    .unwrap_or_else(|e| panic!("{pooler:?} {target:?}: {e:#}"));
                assert!(f.services.contains_key(pooler.service_name()));
                assert_eq!(f.services["runner"].replicas(), 3);
                assert_eq!(
                    f.services["migrate"].environment["PGPASSWORD"].as_deref(),
                    Some("secretvalue123")
                );
                if target == Target::Dokploy {
                    assert!(f.networks["dokploy-network"].external);
                    assert!(f.services["postgres"].ports.is_empty());
                    let rule = f.services["runner"]
                        .labels
                        .iter()
                        .find(|(k, _)| k.ends_with("-workers.rule"))
                        .unwrap()
                        .1;
                    assert!(rule.ends_with("$`)"), "$$ is a literal $: {rule}");
                }
            }
        }
    }
}
