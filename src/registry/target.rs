//! Where images are published: `--registry HOST[:PORT]/NAMESPACE` and `--tag`, checked once,
//! and everything derived from them (image references, the registry API's address, the key the
//! Docker config files the registry's credentials under).
//!
//! Image references follow Docker's grammar (distribution/reference): the first path component
//! names a registry only when it holds a `.` or a `:`, or is `localhost`; repository components are
//! lowercase `[a-z0-9]` runs joined by `.`, `_`, `__` or dashes; a tag is `[A-Za-z0-9_][\w.-]{0,127}`.

use anyhow::Result;

use crate::error::UserError;

/// Docker Hub's names: what users write, where its API answers, and its Docker config key.
const HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];
const HUB_API: &str = "registry-1.docker.io";
const HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// A registry and the namespace our images go under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `host[:port]` as written (`127.0.0.1:5000`, `ghcr.io`, `docker.io`).
    pub host: String,
    /// One or more path components (`acme`, `acme/stack`).
    pub namespace: String,
}

fn malformed(value: &str, why: &str) -> anyhow::Error {
    UserError::new(format!("--registry `{value}` is not HOST[:PORT]/NAMESPACE: {why}"))
        .hint("for example `--registry ghcr.io/acme`, `--registry registry.example.com:5000/stack` or `--registry 127.0.0.1:5000/stack` (Docker Hub: `--registry docker.io/USER`)")
        .into()
}

impl Registry {
    /// Parses and checks `HOST[:PORT]/NAMESPACE` (a scheme, a tag or a digest is refused).
    pub fn parse(value: &str) -> Result<Registry> {
        let v = value.trim();
        if v.contains("://") {
            return Err(malformed(
                value,
                "leave out the scheme (http:// or https://): loopback registries are spoken to over http, others over https",
            ));
        }
        let Some((host, namespace)) = v.split_once('/') else {
            return Err(malformed(
                value,
                "it names no namespace after the host (the images go to HOST/NAMESPACE/postgres, ...)",
            ));
        };
        if !is_registry_host(host) {
            return Err(malformed(
                value,
                &format!(
                    "`{host}` is not a registry host (a host name with a dot, an IP address, `localhost`, each with an optional :PORT)"
                ),
            ));
        }
        check_host(host).map_err(|why| malformed(value, &why))?;
        let namespace = namespace.trim_end_matches('/');
        if namespace.is_empty() {
            return Err(malformed(value, "the namespace after the host is empty"));
        }
        for part in namespace.split('/') {
            if !is_path_component(part) {
                return Err(malformed(
                    value,
                    &format!(
                        "the namespace part `{part}` is not a valid repository name (lowercase letters and digits, joined by `.`, `_`, `__` or `-`)"
                    ),
                ));
            }
        }
        Ok(Registry {
            host: host.to_string(),
            namespace: namespace.to_string(),
        })
    }

    fn is_hub(&self) -> bool {
        HUB_ALIASES.contains(&self.host.as_str())
    }

    /// `HOST/NAMESPACE/name`, the repository `name` is pushed to.
    pub fn repository(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.host, self.namespace)
    }

    /// The repository's path in the registry API (`NAMESPACE/name`).
    pub fn api_path(&self, name: &str) -> String {
        format!("{}/{name}", self.namespace)
    }

    /// The registry API's base URL: plain http on loopback (as the Docker Engine does for
    /// 127.0.0.0/8 by default), https everywhere else.
    pub fn api_base(&self) -> String {
        let host = if self.is_hub() {
            HUB_API
        } else {
            self.host.as_str()
        };
        let scheme = if is_loopback(host) { "http" } else { "https" };
        format!("{scheme}://{host}")
    }

    /// The key of this registry in the Docker config (`auths`, `credHelpers`) and the server
    /// address handed to credential helpers and the engine.
    pub fn config_key(&self) -> String {
        if self.is_hub() {
            HUB_CONFIG_KEY.to_string()
        } else {
            self.host.clone()
        }
    }
}

/// Whether `host` (with an optional port) is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let name = strip_port(host);
    name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split_once(']').map_or(host, |(ip, _)| ip);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Docker's rule: the first component of a reference names a registry when it holds a `.` or
/// a `:`, or is `localhost`.
fn is_registry_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn check_host(host: &str) -> std::result::Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{host}` opens `[` but never closes it"))?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
        (None, after.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let ok = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(format!("`{name}` is not a host name"));
        }
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("`{p}` is not a port (1-65535)")),
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Checks `--tag`.
pub fn check_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(UserError::new(format!("--tag `{tag}` is not a valid image tag"))
            .hint("a tag is 1-128 of A-Z a-z 0-9 _ . - and starts with a letter, digit or _ (e.g. `--tag 2025-06-01` or `--tag v1.2.0`)")
            .into())
    }
}

/// The tag of an image reference (`stackctl/postgres:17` -> `17`), if it has one.
pub fn tag_of(reference: &str) -> Option<&str> {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':')
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
}

/// The registry host a reference names (`127.0.0.1:5000/ns/postgres:17` -> `127.0.0.1:5000`);
/// `None` for a Docker Hub short name such as `stackctl/postgres:17` or `debian:trixie-slim`.
pub fn registry_of(reference: &str) -> Option<&str> {
    let (first, _) = reference.split_once('/')?;
    is_registry_host(first).then_some(first)
}

/// The Docker config key for the registry a reference names (Docker Hub's for short names).
pub fn config_key_of(reference: &str) -> String {
    match registry_of(reference) {
        Some(h) if !HUB_ALIASES.contains(&h) => h.to_string(),
        _ => HUB_CONFIG_KEY.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registries() {
        let r = Registry::parse("127.0.0.1:5000/stack").unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.namespace, "stack");
        assert_eq!(r.repository("postgres"), "127.0.0.1:5000/stack/postgres");
        assert_eq!(r.api_base(), "http://127.0.0.1:5000");
        let r = Registry::parse("ghcr.io/acme/stack/").unwrap();
        assert_eq!(r.namespace, "acme/stack");
        assert_eq!(r.api_base(), "https://ghcr.io");
        assert_eq!(r.config_key(), "ghcr.io");
        let r = Registry::parse("docker.io/someone").unwrap();
        assert_eq!(r.api_base(), "https://registry-1.docker.io");
        assert_eq!(r.config_key(), "https://index.docker.io/v1/");
        assert_eq!(
            Registry::parse("localhost:5000/a_b").unwrap().api_base(),
            "http://localhost:5000"
        );
        assert_eq!(
            Registry::parse("[::1]:5000/x").unwrap().api_base(),
            "http://[::1]:5000"
        );
    }

    #[test]
    fn refuses_malformed_registries() {
        for bad in [
            "",
            "ghcr.io",
            "ghcr.io/",
            "acme/stack",
            "https://ghcr.io/acme",
            "ghcr.io/Acme",
            "ghcr.io/acme//x",
            "ghcr.io/-acme",
            "host.example:0/x",
            "host.example:99999/x",
            "host..example/x",
            "bad host.example/x",
            "ghcr.io/acme:1",
        ] {
            let e = Registry::parse(bad).unwrap_err();
            let u = e.downcast_ref::<UserError>().unwrap();
            assert!(u.message.contains("HOST[:PORT]/NAMESPACE"), "{bad}: {u}");
            assert!(u.hint.is_some());
        }
    }

    #[test]
    fn tags_and_references() {
        assert!(check_tag("v1.2.0").is_ok());
        assert!(check_tag("17").is_ok());
        for bad in ["", ".x", "-x", "a/b", "a:b", &"x".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
        assert_eq!(tag_of("stackctl/postgres:17"), Some("17"));
        assert_eq!(tag_of("127.0.0.1:5000/ns/postgres:17"), Some("17"));
        assert_eq!(tag_of("127.0.0.1:5000/ns/postgres"), None);
        assert_eq!(registry_of("127.0.0.1:5000/ns/p:1"), Some("127.0.0.1:5000"));
        assert_eq!(registry_of("stackctl/postgres:17"), None);
        assert_eq!(registry_of("debian:trixie-slim"), None);
        assert_eq!(
            config_key_of("grafana/loki:3"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(config_key_of("ghcr.io/x/y:1"), "ghcr.io");
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
