//! Parsing `stack.toml` text, with errors that name the file, the line and the `section.key`
//! (toml's own messages carry only the value).

use std::path::Path;

use anyhow::Result;

use super::sections::StackFile;
use crate::error::UserError;

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
pub(super) fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    (1..=text.lines().count()).find(|&l| key_at_line(text, l).as_deref() == Some(dotted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[project]\nname = \"a\"\n\n[pooler]\nkind = \"pgcat\"\nsizes = 3\n";
        let err = parse_stack_file(text, Path::new("stack.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("stack.toml:6"), "{err}");
        assert!(err.contains("sizes"), "{err}");
    }
}
