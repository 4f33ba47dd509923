//! The stack directory, resolved once at start: every command gets an absolute path, so what
//! reaches Docker (bind-mount sources, `working_dir` labels) never depends on the caller's cwd.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::UserError;

/// `--dir` as an absolute path (symlinks resolved when it exists). `may_create` (for `init`)
/// accepts a directory that does not exist yet; every other command needs an existing one.
pub fn resolve(dir: &Path, may_create: bool) -> Result<PathBuf> {
    let abs = std::path::absolute(dir).map_err(|e| {
        UserError::new(format!(
            "cannot resolve the stack directory {}: {e}",
            dir.display()
        ))
        .hint("pass an existing directory with --dir")
    })?;
    match std::fs::metadata(&abs) {
        Ok(m) if m.is_dir() => Ok(std::fs::canonicalize(&abs).unwrap_or(abs)),
        // `init` says itself why it cannot use a file (or a path under one) as the stack
        // directory, or create it.
        Ok(_) | Err(_) if may_create => Ok(abs),
        Ok(_) => Err(UserError::new(format!(
            "the stack directory {} is a file, not a directory",
            abs.display()
        ))
        .hint("pass the directory that holds stack.toml with --dir")
        .into()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Err(UserError::new(format!(
                "the stack directory {} does not exist",
                abs.display()
            ))
            .hint(format!(
                "create a stack there with `stackctl --dir {} init`, or pass another --dir",
                dir.display()
            ))
            .into())
        }
        Err(e) => Err(UserError::new(format!(
            "cannot read the stack directory {}: {e}",
            abs.display()
        ))
        .hint("check its permissions, or pass another --dir")
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_dirs_become_absolute_and_missing_ones_are_refused_except_for_init() {
        let tmp = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(real.join("s")).unwrap();
        // `a/../s` is resolved against the current directory without changing it.
        let via = real.join("s").join(".").join("..").join("s");
        assert_eq!(resolve(&via, false).unwrap(), real.join("s"));
        assert!(resolve(Path::new("."), false).unwrap().is_absolute());

        let missing = real.join("nope");
        assert_eq!(resolve(&missing, true).unwrap(), missing);
        let err = resolve(&missing, false).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(
            crate::error::hint_of(&err).is_some_and(|h| h.contains("init")),
            "{err:?}"
        );

        std::fs::write(real.join("f"), "x").unwrap();
        let err = resolve(&real.join("f"), false).unwrap_err();
        assert!(err.to_string().contains("is a file"), "{err}");
        // Under a file: `init` reports it itself; other commands say it does not exist.
        assert_eq!(resolve(&real.join("f/s"), true).unwrap(), real.join("f/s"));
        let err = resolve(&real.join("f/s"), false).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
