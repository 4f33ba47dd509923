//! Files of a stack directory as tests read them: modes, `.env` values, snapshots of a whole
//! tree (to prove a failing command wrote nothing) and YAML lookups.

use std::path::{Path, PathBuf};

/// Mode bits of a file.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `KEY=value` lines of a `.env` text.
pub fn parse_env(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A directory tree: relative path -> (mode, contents; `None` for a directory).
pub type Snapshot = std::collections::BTreeMap<PathBuf, (u32, Option<Vec<u8>>)>;

/// Records every file and directory under `root` (an absent root is an empty snapshot), to
/// prove that a failing command wrote nothing.
pub fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel, (mode(&p), None));
                walk(root, &p, out);
            } else {
                out.insert(rel, (mode(&p), Some(std::fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two snapshots are equal, naming the first entry that differs.
pub fn assert_unchanged(before: &Snapshot, after: &Snapshot) {
    for (p, v) in after {
        match before.get(p) {
            None => panic!("{} was created", p.display()),
            Some(b) if b != v => panic!("{} was changed", p.display()),
            _ => {}
        }
    }
    for p in before.keys() {
        assert!(after.contains_key(p), "{} was removed", p.display());
    }
}

/// Looks up `a.b.c` in a YAML value (each segment a mapping key).
pub fn yget<'a>(v: &'a serde_yaml::Value, path: &str) -> Option<&'a serde_yaml::Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// A YAML scalar as a string (numbers and booleans too), or panics.
pub fn ystr(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}
