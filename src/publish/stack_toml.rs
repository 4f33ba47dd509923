//! Points `stack.toml` `[images]` at published references: only those keys change (toml_edit
//! keeps every comment, blank line and other key as the user wrote them), the result must load
//! as a valid stack before it is written, and it is written atomically (temp file + rename).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use toml_edit::{DocumentMut, Item, Table, Value};

use crate::config::{self, STACK_FILE, Stack};
use crate::error::UserError;
use crate::files;

/// The new text of `stack.toml` with `[images] name = reference` for each pair (a missing file
/// or section is created). Pure, so it is tested without a disk.
pub fn with_images(text: &str, path: &Path, refs: &[(String, String)]) -> Result<String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| {
        UserError::new(format!("{} is not valid TOML: {e}", path.display()))
            .hint("fix the file (or remove it and run `stackctl init`)")
    })?;
    if !doc.contains_key("images") {
        doc.insert("images", Item::Table(Table::new()));
    }
    let images = doc["images"].as_table_like_mut().ok_or_else(|| {
        anyhow!(
            UserError::new(format!("{}: `images` is not a table", path.display()))
                .hint("write it as an `[images]` section")
        )
    })?;
    for (name, reference) in refs {
        match images.get_mut(name).and_then(Item::as_value_mut) {
            // Keep the value's own decoration (a trailing `# comment`).
            Some(v) => {
                let decor = v.decor().clone();
                *v = Value::from(reference.as_str());
                *v.decor_mut() = decor;
            }
            None => {
                images.insert(name, toml_edit::value(reference.as_str()));
            }
        }
    }
    Ok(doc.to_string())
}

/// Writes the `[images]` changes to `stack.toml` in `dir`; returns whether the file changed.
pub fn point_images_at(dir: &Path, refs: &[(String, String)]) -> Result<bool> {
    let path = dir.join(STACK_FILE);
    let (text, mode) = match std::fs::read_to_string(&path) {
        Ok(t) => {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            (t, mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), files::PUBLIC),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = with_images(&text, &path, refs)?;
    if new == text {
        return Ok(false);
    }
    // The result must be a stack stackctl accepts, or nothing is written.
    let parsed = config::parse_stack_file(&new, &path)?;
    Stack::from_file(dir, parsed)?;
    files::write_atomic(&path, new.as_bytes(), mode)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_keys_change_and_comments_stay() {
        let text = "# my stack\n[project]\nname = \"shop\" # the name\n\n[images]                     # every image, pinned\n# ours\npostgres = \"stackctl/postgres:17\" # keep me\npgbouncer = \"stackctl/pgbouncer:1.24\"\nloki = \"grafana/loki:3.7.0\"\n";
        let refs = vec![
            (
                "postgres".to_string(),
                "127.0.0.1:5000/ns/postgres:17".to_string(),
            ),
            (
                "pgbouncer".to_string(),
                "127.0.0.1:5000/ns/pgbouncer:1.24".to_string(),
            ),
        ];
        let new = with_images(text, Path::new("stack.toml"), &refs).unwrap();
        assert_eq!(
            new,
            "# my stack\n[project]\nname = \"shop\" # the name\n\n[images]                     # every image, pinned\n# ours\npostgres = \"127.0.0.1:5000/ns/postgres:17\" # keep me\npgbouncer = \"127.0.0.1:5000/ns/pgbouncer:1.24\"\nloki = \"grafana/loki:3.7.0\"\n"
        );
        // Idempotent.
        assert_eq!(
            with_images(&new, Path::new("stack.toml"), &refs).unwrap(),
            new
        );
    }

    #[test]
    fn a_missing_section_is_added_and_bad_toml_refused() {
        let refs = vec![(
            "stackctl".to_string(),
            "r.example/ns/stackctl:1".to_string(),
        )];
        let new = with_images("[project]\nname = \"x\"\n", Path::new("s.toml"), &refs).unwrap();
        assert!(
            new.contains("[images]\nstackctl = \"r.example/ns/stackctl:1\""),
            "{new}"
        );
        let e = with_images("[images\n", Path::new("s.toml"), &refs).unwrap_err();
        assert!(e.to_string().contains("not valid TOML"), "{e}");
    }
}
