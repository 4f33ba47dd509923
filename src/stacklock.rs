//! The stack's one lock, for the commands that must never overlap on one stack: `restore` (and
//! `db restore`) take it alone, `migrate` shares it with other migrates (a migration while a
//! restore swaps the data volume would be lost, or half-applied to the wrong data; two migrates
//! are already serialised by PostgreSQL's advisory lock).
//!
//! It is an OS file lock (`flock`, through `std::fs::File::try_lock`) on `.stackctl.lock` in the
//! stack's directory. The OS releases it when the process ends, however it ends, so a killed
//! `restore` never leaves a stale lock behind and its re-run can start at once. The file holds
//! who holds the lock (command and pid), for the error the next command prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::error::UserError;

/// The lock file's name in the stack's directory.
pub const FILE: &str = ".stackctl.lock";

/// Whether a command needs the stack alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No other holder at all (`restore`, `db restore`).
    Exclusive,
    /// Other shared holders are fine (`migrate`).
    Shared,
}

/// Held for as long as it lives; dropping it (or the process ending) releases the lock.
#[derive(Debug)]
pub struct StackLock {
    file: File,
}

/// Takes the lock of the stack in `dir` for `command`, or fails at once, naming the command
/// that holds it.
pub fn acquire(dir: &Path, command: &str, mode: Mode) -> Result<StackLock> {
    let path: PathBuf = dir.join(FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the stack's lock file {}", path.display()))?;
    let taken = match mode {
        Mode::Exclusive => file.try_lock(),
        Mode::Shared => file.try_lock_shared(),
    };
    match taken {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another stackctl command".to_string()
            } else {
                holder.to_string()
            };
            bail!(
                UserError::new(format!(
                    "cannot run `{command}`: {holder} is running on this stack (it holds {}); \
                     nothing was changed",
                    path.display()
                ))
                .hint("wait until it has finished, then run the command again")
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    // Shared holders each write their name: any of them is one that runs.
    let who = format!("`stackctl {command}` (pid {})\n", std::process::id());
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(who.as_bytes())?;
    Ok(StackLock { file })
}

impl Drop for StackLock {
    /// Forgets the holder before the lock goes (best effort: a killed process leaves its name,
    /// but then nothing holds the lock and no one reads it).
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_is_alone_and_migrates_share_until_they_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "restore", Mode::Exclusive).unwrap();
        let e = acquire(dir.path(), "migrate", Mode::Shared)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot run `migrate`"), "{e}");
        assert!(e.contains("`stackctl restore`"), "{e}");
        assert!(e.contains("nothing was changed"), "{e}");
        drop(first);
        // Migrates share it with each other, and keep a restore out.
        let a = acquire(dir.path(), "migrate", Mode::Shared).unwrap();
        let b = acquire(dir.path(), "migrate", Mode::Shared).unwrap();
        let e = acquire(dir.path(), "restore", Mode::Exclusive)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot run `restore`"), "{e}");
        drop((a, b));
        assert!(acquire(dir.path(), "restore", Mode::Exclusive).is_ok());
    }
}
