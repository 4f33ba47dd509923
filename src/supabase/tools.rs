//! pg_dump and pg_restore, run in a one-off container of the stack's PostgreSQL image (so the
//! client is the stack's own version and nothing is installed on the host). The state directory
//! is mounted at `/import`; files written there belong to the directory's owner.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::source;
use crate::db::connect::Target;
use crate::engine::{Docker, Task, TaskOutput, run_task};
use crate::error::UserError;

/// Where the state directory appears in the container.
pub const MOUNT: &str = "/import";
/// Where a `--dump FILE` appears in the container.
const SOURCE_DUMP: &str = "/source/source.dump";
/// The application name of the dump's and the restore's sessions (visible in pg_stat_activity).
pub const DUMP_APP: &str = "stackctl import-supabase (dump)";
pub const RESTORE_APP: &str = "stackctl import-supabase (restore)";
/// Dumps and restores of real projects take long; the deadline only catches a hung tool.
const LONG: Duration = Duration::from_secs(12 * 3600);
const SHORT: Duration = Duration::from_secs(300);

pub struct Tools<'a> {
    pub docker: &'a Docker,
    pub image: String,
    pub project: String,
    /// The state directory on the host.
    pub dir: PathBuf,
    /// A `--dump FILE` to mount.
    pub dump_file: Option<PathBuf>,
}

/// What to dump.
pub struct DumpSpec<'a> {
    pub snapshot: &'a str,
    /// `-n` patterns (when --schema is given) or empty for all but the skipped schemas.
    pub include: &'a [String],
    pub exclude_schemas: &'a [String],
    pub exclude_tables: &'a [String],
    pub exclude_data: &'a [String],
}

impl Tools<'_> {
    /// A task; all but the version check mount the state directory (created here) and the dump file.
    fn task(
        &self,
        purpose: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        deadline: Duration,
    ) -> Result<Task> {
        let mut binds = Vec::new();
        let mut owner = None;
        if purpose != "import-version" {
            ensure_state_dir(&self.dir)?;
            owner = std::fs::metadata(&self.dir)
                .map(|m| format!("{}:{}", m.uid(), m.gid()))
                .ok();
            binds.push(format!("{}:{MOUNT}", self.dir.display()));
            if let Some(f) = &self.dump_file {
                binds.push(format!("{}:{SOURCE_DUMP}:ro", f.display()));
            }
        }
        Ok(Task {
            project: self.project.clone(),
            purpose: purpose.into(),
            image: self.image.clone(),
            cmd,
            env,
            binds,
            user: owner,
            deadline,
        })
    }

    async fn run(&self, task: Task, what: &str, hint: &str) -> Result<TaskOutput> {
        let out = run_task(self.docker, &task).await?;
        if out.code != 0 {
            return Err(UserError::new(format!(
                "{what} failed (exit code {}):\n{}{}",
                out.code,
                first_error(&out.stderr)
                    .map(|e| format!("{e}\nthe last lines of its output:\n"))
                    .unwrap_or_default(),
                out.stderr_tail(15)
            ))
            .hint(hint)
            .into());
        }
        Ok(out)
    }

    /// `pg_dump --version` of the image.
    pub async fn client_version(&self) -> Result<(u32, u32)> {
        let t = self.task(
            "import-version",
            vec!["pg_dump".into(), "--version".into()],
            vec![],
            SHORT,
        )?;
        let out = self.run(t, "pg_dump --version", "").await?;
        let text = String::from_utf8_lossy(&out.stdout);
        source::parse_client_version(&text).with_context(|| {
            format!(
                "cannot read the version of pg_dump in {}: {text:?}",
                self.image
            )
        })
    }

    /// Dumps the source (custom format) into `<MOUNT>/<file>`.
    pub async fn dump(&self, src: &Target, spec: &DumpSpec<'_>, file: &str) -> Result<()> {
        let mut cmd: Vec<String> = vec![
            "pg_dump".into(),
            "--format=custom".into(),
            format!("--file={MOUNT}/{file}"),
            format!("--snapshot={}", spec.snapshot),
        ];
        cmd.extend(spec.include.iter().map(|s| format!("--schema={s}")));
        cmd.extend(
            spec.exclude_schemas
                .iter()
                .map(|s| format!("--exclude-schema={s}")),
        );
        cmd.extend(
            spec.exclude_tables
                .iter()
                .map(|s| format!("--exclude-table={s}")),
        );
        cmd.extend(
            spec.exclude_data
                .iter()
                .map(|s| format!("--exclude-table-data={s}")),
        );
        let t = self.task("import-dump", cmd, source::libpq_env(src, DUMP_APP), LONG)?;
        self.run(
            t,
            "pg_dump of the source",
            "check the source's connection and permissions; nothing was written to the target",
        )
        .await?;
        Ok(())
    }

    /// The archive's table of contents (`pg_restore -l`), with each entry's dependencies
    /// (`--verbose`: `;\tdepends on: ID...` lines, comments to `pg_restore -L`).
    pub async fn list(&self, archive: &str) -> Result<String> {
        let t = self.task(
            "import-list",
            vec![
                "pg_restore".into(),
                "--list".into(),
                "--verbose".into(),
                archive.into(),
            ],
            vec![],
            SHORT,
        )?;
        let out = self
            .run(
                t,
                "reading the dump's table of contents",
                "is the file a pg_dump custom-format archive (pg_dump -Fc)?",
            )
            .await?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The SQL of the entries in `list_file` (`pg_restore --file=-`), without connecting anywhere.
    pub async fn sql_of(&self, archive: &str, list_file: &str) -> Result<String> {
        let t = self.task(
            "import-list",
            vec![
                "pg_restore".into(),
                format!("--use-list={MOUNT}/{list_file}"),
                "--file=-".into(),
                archive.into(),
            ],
            vec![],
            SHORT,
        )?;
        let out = self.run(t, "reading the dump's foreign keys", "").await?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Restores `archive` with the entries of `list_file` into `target` (as its login).
    pub async fn restore(
        &self,
        target: &Target,
        archive: &str,
        list_file: &str,
        jobs: u32,
    ) -> Result<()> {
        let cmd = vec![
            "pg_restore".into(),
            "--no-owner".into(),
            "--no-privileges".into(),
            "--no-security-labels".into(),
            "--no-tablespaces".into(),
            "--exit-on-error".into(),
            format!("--jobs={}", jobs.max(1)),
            format!("--use-list={MOUNT}/{list_file}"),
            format!("--dbname={}", target.database()),
            archive.into(),
        ];
        let t = self.task(
            "import-restore",
            cmd,
            source::libpq_env(target, RESTORE_APP),
            LONG,
        )?;
        self.run(
            t,
            "pg_restore into the target",
            "the dump is kept; fix the cause and run the same command again: it resumes from the dump and replaces what this run restored",
        )
        .await?;
        Ok(())
    }

    /// The archive path inside the container.
    pub fn archive(&self, file: Option<&str>) -> String {
        match file {
            Some(f) => format!("{MOUNT}/{f}"),
            None => SOURCE_DUMP.to_string(),
        }
    }
}

/// The cause of a failed pg_dump / pg_restore: the first line with `ERROR:` (later errors follow
/// from it, and the last lines are often the SQL of the failing command), after the archive
/// entry that was being restored (pg_restore's `from TOC entry ...` line before it).
pub fn first_error(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines.iter().position(|l| l.contains("ERROR:"))?;
    let entry = lines[..at].iter().rev().find_map(|l| {
        l.split_once("from TOC entry ")
            .map(|(_, e)| format!("  while restoring TOC entry {}\n", e.trim()))
    });
    Some(format!(
        "{}  {}",
        entry.unwrap_or_default(),
        lines[at].trim()
    ))
}

/// The state directory of imports: `<stack>/.stackctl/import`.
pub fn state_dir(stack_dir: &Path) -> PathBuf {
    stack_dir.join(".stackctl").join("import")
}

/// Creates the state directory, private to its owner, with a `.gitignore` beside it.
pub fn ensure_state_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    crate::files::ensure_writable_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    if let Some(parent) = dir.parent() {
        let ignore = parent.join(".gitignore");
        if !ignore.exists() {
            crate::files::write_atomic(
                &ignore,
                b"# stackctl's state: dumps hold user data\n*\n",
                crate::files::PUBLIC,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_restore_names_its_first_error_and_the_entry_it_was_restoring() {
        // pg_restore --exit-on-error when a type of a missing extension is used: the cause comes
        // before the failing command's SQL, which is all that the last lines show.
        let mut stderr = String::from(
            "pg_restore: connecting to database for restore\n\
             pg_restore: processing item 372 FUNCTION nearest(extensions.vector)\n\
             pg_restore: while PROCESSING TOC:\n\
             pg_restore: from TOC entry 225; 1259 16749 TABLE docs postgres\n\
             pg_restore: error: could not execute query: ERROR:  type \"extensions.vector\" does not exist\n\
             LINE 4:     embedding extensions.vector(3)\n\
             Command was: CREATE TABLE app.docs (\n",
        );
        for i in 0..20 {
            stderr.push_str(&format!("    col{i} text,\n"));
        }
        stderr.push_str(");\npg_restore: error: ERROR: a later error\n");
        assert_eq!(
            first_error(&stderr).unwrap(),
            "  while restoring TOC entry 225; 1259 16749 TABLE docs postgres\n  \
             pg_restore: error: could not execute query: ERROR:  type \"extensions.vector\" does not exist"
        );
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        assert!(!tail.iter().any(|l| l.contains("does not exist")));
        // pg_dump names no entry; no ERROR line, no cause.
        assert_eq!(
            first_error("pg_dump: error: query failed: ERROR:  permission denied for table t\n")
                .unwrap(),
            "  pg_dump: error: query failed: ERROR:  permission denied for table t"
        );
        assert_eq!(
            first_error("pg_restore: error: input file is too short\n"),
            None
        );
    }
}
