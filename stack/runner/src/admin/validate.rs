//! Checks a [`Manifest`] before anything is written: names, keys, NUL characters, limits and
//! the database binding (by postgate's own rules), so that a refused deploy changes nothing.

use super::{AdminError, Manifest};

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !k.starts_with("__")
}

/// Check a manifest before anything is written.
pub fn validate(m: &Manifest) -> Result<(), AdminError> {
    let bad = |s: String| Err(AdminError::Invalid(s));
    if !valid_name(&m.name) {
        return bad(format!(
            "invalid worker name {:?}: use 1-63 characters a-z, 0-9 and '-' (not at either end)",
            m.name
        ));
    }
    for k in m.vars.keys().chain(m.secrets.keys()) {
        if !valid_key(k) {
            return bad(format!(
                "invalid var/secret name {k:?}: use letters, digits and '_', not starting with a digit or '__'"
            ));
        }
    }
    // PostgreSQL's text cannot hold NUL: say which field has one before anything is written.
    let texts = [("source", &m.source)]
        .into_iter()
        .chain(m.routes.iter().map(|r| ("a route", r)))
        .chain(m.queues.iter().map(|q| ("a queue name", q)))
        .chain(m.cron.iter().map(|c| ("the cron expression", c)))
        .chain(m.timezone.iter().map(|t| ("the time zone", t)))
        .chain(m.vars.values().map(|v| ("a var's value", v)));
    for (what, text) in texts {
        if text.contains('\0') {
            return bad(format!(
                "{what} contains a NUL character, which cannot be stored"
            ));
        }
    }
    if let Some(k) = m.vars.keys().find(|k| m.secrets.contains_key(*k)) {
        return bad(format!("{k} is given both as a var and as a secret"));
    }
    let l = &m.limits;
    for (what, v) in [
        ("cpu_ms", l.cpu_ms),
        ("memory_mb", l.memory_mb),
        ("wall_ms", l.wall_ms),
        ("concurrency", l.concurrency),
    ] {
        if v.is_some_and(|v| v <= 0) {
            return bad(format!("limit {what} must be positive"));
        }
    }
    if l.body_bytes.is_some_and(|v| v < 0) {
        return bad("limit body_bytes must not be negative".into());
    }
    if let Some(db) = &m.db {
        if !postgate::token::valid_tenant(&db.tenant) {
            return bad(format!(
                "invalid tenant name {:?}: use 1-31 characters a-z, 0-9, _ starting with a letter",
                db.tenant
            ));
        }
        postgate::token::Permissions::from_list(&db.permissions)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::DbBinding;

    fn m() -> Manifest {
        serde_json::from_str(r#"{"name":"hello","source":"export default {}"}"#).unwrap()
    }

    #[test]
    fn validation() {
        assert!(validate(&m()).is_ok());
        let mut x = m();
        x.name = "Bad_Name".into();
        assert!(validate(&x).is_err());
        let mut x = m();
        x.secrets.insert("__db_token".into(), "x".into());
        assert!(validate(&x).is_err(), "reserved names are refused");
        let mut x = m();
        x.vars.insert("K".into(), "v".into());
        x.secrets.insert("K".into(), "s".into());
        assert!(validate(&x).is_err());
        let mut x = m();
        x.limits.cpu_ms = Some(0);
        assert!(validate(&x).is_err());
        let mut x = m();
        x.vars.insert("K".into(), "a\0b".into());
        assert!(
            validate(&x)
                .unwrap_err()
                .to_string()
                .contains("a var's value contains a NUL"),
            "NUL is refused before PostgreSQL sees it"
        );
        let mut x = m();
        x.db = Some(DbBinding {
            tenant: "shop".into(),
            permissions: vec!["DDL".into()],
        });
        assert!(
            validate(&x).is_err(),
            "DDL alone is refused by postgate's rules"
        );
        assert!(serde_json::from_str::<Manifest>(r#"{"name":"a","source":"","x":1}"#).is_err());
    }
}
