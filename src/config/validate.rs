//! The checks on a parsed `stack.toml` that its types cannot express: names, domains, SQL
//! identifiers, sizes that must fit together, distinct ports, pinned images, relative paths.
//!
//! Each failure carries the `section.key` it is about, so the caller can point at its line.

use std::path::Path;

use super::sections::{PoolMode, StackFile};
use crate::error::UserError;

/// A validation error, with the `section.key` it is about (to find its line).
type Invalid = (Option<&'static str>, UserError);

pub(super) fn validate(f: &StackFile) -> std::result::Result<(), Invalid> {
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
    if !(1..=64).contains(&f.swarm.postgate_replicas) {
        return Err(at("swarm.postgate_replicas")(UserError::new(format!(
            "swarm.postgate_replicas is {}; it must be between 1 and 64",
            f.swarm.postgate_replicas
        ))));
    }
    if !["vip", "dnsrr"].contains(&f.swarm.endpoint_mode.as_str()) {
        return Err(at("swarm.endpoint_mode")(UserError::new(format!(
            "swarm.endpoint_mode is {:?}; it must be \"vip\" or \"dnsrr\"",
            f.swarm.endpoint_mode
        ))));
    }
    let r = &f.runner;
    for (k, v) in [
        ("runner.cpu_ms", r.cpu_ms),
        ("runner.memory_mb", r.memory_mb),
        ("runner.wall_ms", r.wall_ms),
        ("runner.concurrency", r.concurrency),
        ("runner.workflow_retention_days", r.workflow_retention_days),
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
        ("ports.prometheus", f.ports.prometheus),
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
        ("images.prometheus", &images.prometheus),
        ("images.postgres_exporter", &images.postgres_exporter),
        ("images.pgbouncer_exporter", &images.pgbouncer_exporter),
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
    let b = &f.backup;
    if !(1..=86_400).contains(&b.archive_timeout) {
        return Err(at("backup.archive_timeout")(UserError::new(format!(
            "backup.archive_timeout {} must be between 1 and 86400 seconds",
            b.archive_timeout
        ))));
    }
    if !(1..=9_999_999).contains(&b.retention_full) {
        return Err(at("backup.retention_full")(UserError::new(format!(
            "backup.retention_full {} must be at least 1 (full backups kept)",
            b.retention_full
        ))));
    }
    for (field, expr) in [
        ("backup.full_schedule", &b.full_schedule),
        ("backup.diff_schedule", &b.diff_schedule),
    ] {
        if let Err(e) = crate::cron::parse(field, expr) {
            return Err(at(field)(e));
        }
    }
    for (key, value) in [
        ("metrics.retention", &f.metrics.retention),
        ("metrics.scrape_interval", &f.metrics.scrape_interval),
    ] {
        if !is_prometheus_duration(value) {
            return Err(at(key)(
                UserError::new(format!(
                    "{key} `{value}` is not a duration Prometheus reads"
                ))
                .hint("write a number and a unit, like `15s`, `5m`, `12h`, `15d` or `4w`"),
            ));
        }
    }
    let r = &f.observability.log_retention;
    if !(r.len() > 1 && r.ends_with('h') && r[..r.len() - 1].bytes().all(|b| b.is_ascii_digit())) {
        return Err(at("observability.log_retention")(UserError::new(format!(
            "observability.log_retention `{r}` must be a number of hours, like `744h`"
        ))));
    }
    Ok(())
}

/// A Prometheus duration of one unit (`15s`, `5m`, `15d`, ...), non-zero.
fn is_prometheus_duration(v: &str) -> bool {
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
        && ["ms", "s", "m", "h", "d", "w", "y"].contains(&unit)
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
    fn domains_are_checked() {
        assert!(check_domain("d", "example.com").is_ok());
        assert!(check_domain("d", "a-b.example.com").is_ok());
        for bad in ["", "exa mple.com", "-a.com", "a..com", "a_b.com", "a.com/x"] {
            assert!(check_domain("d", bad).is_err(), "{bad}");
        }
    }
}
