//! Reading a rendered Compose file back: its services, and a service's labels, networks and
//! volumes in either Compose form; and the `${VAR}` interpolations of its text.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use crate::support::ystr;

pub(super) fn services(doc: &Value) -> BTreeMap<String, Value> {
    doc.get("services")
        .and_then(Value::as_mapping)
        .expect("services")
        .iter()
        .map(|(k, v)| (ystr(k), v.clone()))
        .collect()
}

/// Labels in either Compose form (map or `k=v` list).
pub(super) fn labels(svc: &Value) -> BTreeMap<String, String> {
    match svc.get("labels") {
        None => BTreeMap::new(),
        Some(Value::Mapping(m)) => m.iter().map(|(k, v)| (ystr(k), ystr(v))).collect(),
        Some(Value::Sequence(l)) => l
            .iter()
            .map(|x| {
                let s = ystr(x);
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        Some(other) => panic!("labels: {other:?}"),
    }
}

/// Network names of a service (list or map form).
pub(super) fn networks(svc: &Value) -> BTreeSet<String> {
    match svc.get("networks") {
        None => BTreeSet::new(),
        Some(Value::Sequence(l)) => l.iter().map(ystr).collect(),
        Some(Value::Mapping(m)) => m.keys().map(ystr).collect(),
        Some(other) => panic!("networks: {other:?}"),
    }
}

/// (source, target) of each volume of a service (short `src:dst[:mode]` or long form).
pub(super) fn volumes(svc: &Value) -> Vec<(String, String)> {
    svc.get("volumes")
        .and_then(Value::as_sequence)
        .map(|l| {
            l.iter()
                .map(|v| match v {
                    Value::String(s) => {
                        let mut parts = s.splitn(3, ':');
                        (
                            parts.next().unwrap().to_string(),
                            parts.next().expect("volume without target").to_string(),
                        )
                    }
                    Value::Mapping(_) => (
                        ystr(v.get("source").expect("source")),
                        ystr(v.get("target").expect("target")),
                    ),
                    other => panic!("volume: {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that every `$` of a Compose text is `${VAR...}` interpolation or the `$$` escape, and
/// returns the interpolated variable names.
pub(super) fn interpolated_vars(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut vars = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            if b.get(i + 1) == Some(&b'$') {
                i += 2;
                continue;
            }
            assert_eq!(
                b.get(i + 1),
                Some(&b'{'),
                "bare `$` at byte {i}: {:?}",
                &text[i..(i + 40).min(text.len())]
            );
            let name: String = text[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(!name.is_empty(), "`${{` without a variable at byte {i}");
            let after = b[i + 2 + name.len()];
            assert!(
                matches!(after, b'}' | b':' | b'?' | b'-'),
                "malformed interpolation of {name}"
            );
            vars.insert(name);
            i += 2;
        } else {
            i += 1;
        }
    }
    vars
}
