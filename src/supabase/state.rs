//! What an unfinished import leaves for the next run: the dump (`<key>.dump`), the source's
//! inventory taken in the dump's snapshot, and where a restore was started (`<key>.json`).
//!
//! The key is a hash of the source and the selection, so the same command finds its own dump.
//! A successful, verified import removes both files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::inventory::Inventory;
use crate::files;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The source, as `user@host:port/db` (no password).
    pub source: String,
    pub dumped_at: String,
    /// The inventory taken inside the dump's snapshot, row counts included.
    pub inventory: Inventory,
    /// A restore was started into this target (`user@host:port/db`).
    pub restoring_into: Option<String>,
    /// The imported schemas that held nothing on the target before that restore started.
    pub fresh_schemas: Vec<String>,
    /// Whether auth.users did not exist on the target before that restore started.
    pub fresh_auth_users: bool,
}

pub struct Files {
    pub dir: PathBuf,
    pub key: String,
}

impl Files {
    pub fn new(dir: &Path, identity: &str) -> Self {
        let key = hex::encode(&Sha256::digest(identity.as_bytes())[..8]);
        Self {
            dir: dir.to_path_buf(),
            key,
        }
    }

    pub fn dump_name(&self) -> String {
        format!("{}.dump", self.key)
    }
    pub fn partial_name(&self) -> String {
        format!("{}.dump.partial", self.key)
    }
    pub fn list_name(&self) -> String {
        format!("{}.list", self.key)
    }
    fn state_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.key))
    }
    pub fn dump_path(&self) -> PathBuf {
        self.dir.join(self.dump_name())
    }

    /// The state of an earlier unfinished run, if any.
    pub fn load(&self) -> Result<Option<State>> {
        let p = self.state_path();
        match std::fs::read(&p) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a stackctl import state (delete it to start afresh)",
                    p.display()
                )
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    pub fn save(&self, s: &State) -> Result<()> {
        files::write_atomic(
            &self.state_path(),
            &serde_json::to_vec_pretty(s)?,
            files::SECRET,
        )
    }

    /// Makes a finished dump the dump of this key.
    pub fn commit_dump(&self) -> Result<()> {
        let from = self.dir.join(self.partial_name());
        // pg_dump wrote it in a container, with that container's umask; it holds user data.
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(files::SECRET))
            .with_context(|| format!("setting the mode of {}", from.display()))?;
        std::fs::rename(&from, self.dump_path()).with_context(|| {
            format!(
                "renaming {} to {}",
                from.display(),
                self.dump_path().display()
            )
        })
    }

    /// This run now owns what it restores into `target`: unfinished runs of other imports into
    /// the same target lose their claim, so that they never empty this run's schemas on resume.
    pub fn release_target(&self, target: &str) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".json") else {
                continue;
            };
            if key == self.key {
                continue;
            }
            let other = Files {
                dir: self.dir.clone(),
                key: key.to_string(),
            };
            if let Ok(Some(mut st)) = other.load()
                && st.restoring_into.as_deref() == Some(target)
            {
                st.restoring_into = None;
                other.save(&st)?;
            }
        }
        Ok(())
    }

    /// Removes everything of this key (after a verified import).
    pub fn remove_all(&self) -> Result<()> {
        for name in [
            self.dump_name(),
            self.partial_name(),
            self.list_name(),
            format!("{}.json", self.key),
        ] {
            match std::fs::remove_file(self.dir.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {name}")),
            }
        }
        Ok(())
    }
}
