//! `${VAR}` interpolation the way Compose does it: `$$`, `$VAR`, `${VAR}`, and the `:-`, `-`,
//! `:?`, `?`, `:+`, `+` forms, with defaults that may nest `${...}`.
//!
//! It runs on the YAML tree, values only and never keys, before the typed parse, so an error names
//! the path of the value it came from. Variables come from `.env`, overridden by the process
//! environment (Compose's precedence); the caller merges them.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_yaml::Value;

use crate::error::UserError;

pub(super) fn interpolate_value(
    v: &mut Value,
    vars: &BTreeMap<String, String>,
    path: &str,
) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::compose::fixture::vars;

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
}
