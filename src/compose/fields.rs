//! Single fields of a service, in the short and long forms Compose accepts: the value types they
//! read into (mounts, ports, networks, dependencies) and the deserializers that normalise each
//! syntax (`command` as a string or a list, `environment` as a map or `KEY=VALUE` list, Go-style
//! durations, octal modes, ...).
//!
//! A form we do not implement is refused with a message naming the one we do, never half-read.

use std::time::Duration;

use indexmap::IndexMap;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_yaml::Value;

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

// ---------------------------------------------------------------------------------------------
// Deserializers, one per field syntax

pub(super) fn null_as_default_map<'de, D, T>(d: D) -> Result<IndexMap<String, T>, D::Error>
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

pub(super) fn de_command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
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

pub(super) fn de_env<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Option<String>>, D::Error> {
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

pub(super) fn de_labels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, String>, D::Error> {
    Ok(de_env(d)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

pub(super) fn de_volumes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<VolumeMount>, D::Error> {
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

pub(super) fn de_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PortSpec>, D::Error> {
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

pub(super) fn de_networks<'de, D: Deserializer<'de>>(
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

pub(super) fn de_depends_on<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, DependsOn>, D::Error> {
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

pub(super) fn de_health_test<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

pub(super) fn de_opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
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

pub(super) fn de_opt_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
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

pub(super) fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar_string(&v)
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom("uid/gid must be a number")),
    }
}

pub(super) fn de_expose<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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
}
