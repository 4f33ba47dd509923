//! Atomic file writes with explicit modes.
//!
//! Every file stackctl writes goes through here: a temp file in the same directory, the mode set
//! before any byte lands, then a rename. An interrupted write therefore leaves either the old file or
//! the new one, never half of one, and a secret is never readable by others even for a moment.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

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
