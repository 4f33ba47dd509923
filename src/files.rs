//! Atomic file writes with explicit modes, and `WritePlan`: a set of files checked as a whole
//! (every target writable) before the first is written.
//!
//! Every file stackctl writes goes through here: a temp file in the same directory, the mode set
//! before any byte lands, then a rename. An interrupted write therefore leaves either the old file or
//! the new one, never half of one, and a secret is never readable by others even for a moment.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::error::UserError;

/// Mode for files that hold secrets.
pub const SECRET: u32 = 0o600;
/// Mode for everything else.
pub const PUBLIC: u32 = 0o644;

/// Writes `contents` to `path` atomically with `mode`, creating parent directories.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".stackctl-")
        .tempfile_in(dir)
        .with_context(|| format!("writing in {} (is it writable?)", dir.display()))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of a temp file in {}", dir.display()))?;
    tmp.write_all(contents)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Writes only when the file is absent or its bytes differ; returns whether it wrote.
pub fn write_if_changed(path: &Path, contents: &[u8], mode: u32) -> Result<bool> {
    if let Ok(existing) = fs::read(path) {
        let current_mode = fs::metadata(path)?.permissions().mode() & 0o777;
        if existing == contents && current_mode == mode {
            return Ok(false);
        }
    }
    write_atomic(path, contents, mode)?;
    Ok(true)
}

/// Checks up front that `dir` can be written, so a command fails before writing anything.
pub fn ensure_writable_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(".stackctl-probe-")
        .tempfile_in(dir)
        .with_context(|| format!("directory {} is not writable", dir.display()))?;
    Ok(())
}

/// Resolves `.` and `..` without touching the file system (`dokploy/code/../files` -> `dokploy/files`).
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// The files and directories a command is about to write: checked as a whole, then written.
#[derive(Default)]
pub struct WritePlan {
    files: Vec<(PathBuf, Vec<u8>, u32, String)>,
    dirs: Vec<PathBuf>,
}

impl WritePlan {
    pub fn file(&mut self, path: PathBuf, bytes: Vec<u8>, mode: u32, label: impl Into<String>) {
        self.files.push((path, bytes, mode, label.into()));
    }

    pub fn dir(&mut self, path: PathBuf) {
        self.dirs.push(path);
    }

    /// Checks, without creating anything, that every file and directory can be written: nothing
    /// of the other kind is in the way, and each path's nearest existing ancestor is a writable
    /// directory (probed with a temp file that is removed at once).
    pub fn check(&self) -> Result<()> {
        let mut probed = std::collections::HashSet::new();
        let targets = self
            .files
            .iter()
            .map(|(p, ..)| (p, false))
            .chain(self.dirs.iter().map(|p| (p, true)));
        for (path, is_dir) in targets {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.is_dir() != is_dir
            {
                let what = if is_dir { "a directory" } else { "a file" };
                bail!(
                    UserError::new(format!(
                        "cannot write {}: it exists and is not {what}",
                        path.display()
                    ))
                    .hint("move it away, or choose another --dir / --output")
                );
            }
            let mut ancestor = if is_dir {
                path.as_path()
            } else {
                path.parent().unwrap_or(Path::new("."))
            };
            loop {
                match std::fs::metadata(ancestor) {
                    Ok(meta) if meta.is_dir() => break,
                    Ok(_) => bail!(
                        UserError::new(format!(
                            "cannot write {}: {} is a file, not a directory",
                            path.display(),
                            ancestor.display()
                        ))
                        .hint("move that file away, or choose another --dir / --output")
                    ),
                    Err(_) => match ancestor.parent() {
                        Some(p) if !p.as_os_str().is_empty() => ancestor = p,
                        _ => {
                            ancestor = Path::new(".");
                            break;
                        }
                    },
                }
            }
            if probed.insert(ancestor.to_path_buf()) {
                tempfile::Builder::new()
                    .prefix(".stackctl-probe-")
                    .tempfile_in(ancestor)
                    .map_err(|e| {
                        UserError::new(format!(
                            "cannot write {}: directory {} is not writable ({e})",
                            path.display(),
                            ancestor.display()
                        ))
                        .hint("fix its permissions, or choose another --dir / --output")
                    })?;
            }
        }
        Ok(())
    }

    /// Writes each file whose bytes or mode differ; returns the labels of those written.
    pub fn apply(self) -> Result<Vec<String>> {
        for d in &self.dirs {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating directory {}", d.display()))?;
        }
        let mut changed = Vec::new();
        for (path, bytes, mode, label) in self.files {
            if write_if_changed(&path, &bytes, mode)? {
                changed.push(label);
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_parent_components() {
        assert_eq!(
            normalize(Path::new("./dokploy/code/../files")),
            PathBuf::from("dokploy/files")
        );
        assert_eq!(normalize(Path::new("/a/b/../../c")), PathBuf::from("/c"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(normalize(Path::new("/..")), PathBuf::from("/"));
    }
}
