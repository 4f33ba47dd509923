//! Migration files and the pure planning step: which are applied, which are pending, which are wrong.
//!
//! Files are named like refinery's: `V{version}__{name}.sql`, and their checksums are refinery's
//! (SipHash-1-3 of name, version and text), stored in refinery's history-table format. The planning
//! is a pure function of the files and the history rows, so it is unit-tested without a database.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::sql::{self, Statement};
use crate::error::UserError;

/// A migration file (embedded or on disk).
#[derive(Debug, Clone)]
pub struct MigrationFile {
    pub version: i32,
    pub name: String,
    /// How to name the file to a person: `migrations/V1__postgate.sql`, `db/migrations/V3__x.sql`.
    pub file: String,
    pub sql: String,
    pub checksum: u64,
}

impl MigrationFile {
    /// Builds a migration from its file name (`V1__name.sql`) and text; refuses a bad name.
    pub fn new(file_name: &str, shown: String, sql: String) -> Result<Self, UserError> {
        let (version, name) = parse_file_name(file_name).ok_or_else(|| {
            UserError::new(format!(
                "{shown}: a migration file must be named V<version>__<name>.sql (version a number, name letters, digits and _)"
            ))
            .hint("rename it, e.g. V3__add_orders.sql, or create the next one with `stackctl migrate new NAME`")
        })?;
        let stem = format!("V{version}__{name}");
        let checksum = refinery::Migration::unapplied(&stem, &sql)
            .map_err(|e| UserError::new(format!("{shown}: {e}")))?
            .checksum();
        Ok(Self {
            version,
            name,
            file: shown,
            sql,
            checksum,
        })
    }

    /// The file's statements, each with its line.
    pub fn statements(&self) -> Result<Vec<Statement>, UserError> {
        let stmts = sql::split(&self.sql)
            .map_err(|e| UserError::new(format!("{}:{}: {}", self.file, e.line, e.message)))?;
        for s in &stmts {
            let kw = sql::first_keyword(&s.text);
            let second = s
                .text
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_ascii_lowercase();
            let ends_tx = matches!(kw.as_str(), "begin" | "commit" | "start" | "end" | "abort")
                || (kw == "rollback" && !second.starts_with("to"));
            if ends_tx {
                return Err(UserError::new(format!(
                    "{}:{}: `{}` controls the transaction, but each migration already runs in its own transaction",
                    self.file,
                    s.line,
                    kw.to_uppercase()
                ))
                .hint("remove BEGIN/COMMIT from the file"));
            }
        }
        Ok(stmts)
    }
}

/// `V12__add_orders.sql` -> (12, "add_orders").
pub fn parse_file_name(file_name: &str) -> Option<(i32, String)> {
    let stem = file_name.strip_suffix(".sql")?.strip_prefix('V')?;
    let (v, name) = stem.split_once("__")?;
    let version_ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !(version_ok && name_ok) {
        return None;
    }
    Some((v.parse().ok()?, name.to_string()))
}

/// The platform's migrations, embedded in the binary by refinery.
pub fn platform_migrations() -> Vec<MigrationFile> {
    mod embedded {
        refinery::embed_migrations!("migrations");
    }
    let mut out: Vec<MigrationFile> = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| {
            let file = format!("V{}__{}.sql", m.version(), m.name());
            MigrationFile {
                version: m.version(),
                name: m.name().to_string(),
                file: format!("migrations/{file}"),
                sql: m.sql().unwrap_or_default().to_string(),
                checksum: m.checksum(),
            }
        })
        .collect();
    out.sort_by_key(|m| m.version);
    out
}

/// Loads the application's migrations from `dir` (`shown` is how to name it). A missing directory
/// holds no migrations. Every `*.sql` file must be well named; other files are ignored.
pub fn load_dir(dir: &Path, shown: &str) -> Result<Vec<MigrationFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading the migrations directory {}", dir.display()));
        }
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let is_sql = path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("sql"));
        if path.is_file() && is_sql {
            files.push(path);
        }
    }
    files.sort();
    let mut out: Vec<MigrationFile> = Vec::new();
    for path in files {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let shown_file = format!("{}/{}", shown.trim_end_matches('/'), file_name);
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("reading {shown_file}"))?;
        let m = MigrationFile::new(&file_name, shown_file, text)?;
        if let Some(other) = out.iter().find(|o| o.version == m.version) {
            return Err(UserError::new(format!(
                "{} and {} have the same version {}",
                other.file, m.file, m.version
            ))
            .hint("give one of them the next free version: `stackctl migrate new NAME` prints it")
            .into());
        }
        out.push(m);
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

/// A row of a history table (refinery's format).
#[derive(Debug, Clone)]
pub struct Applied {
    pub version: i32,
    pub name: String,
    pub applied_on: String,
    pub checksum: u64,
}

/// Where a migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Applied,
    Pending,
    /// Applied, but the file differs from what was applied.
    Changed,
    /// Applied, but no file has its version any more.
    Missing,
    /// Not applied, but a later version is: it would run out of order.
    OutOfOrder,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Changed => "CHANGED",
            State::Missing => "MISSING",
            State::OutOfOrder => "OUT OF ORDER",
        })
    }
}

/// One line of `migrate status`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub version: i32,
    pub name: String,
    pub file: String,
    pub state: State,
    /// The file's checksum (hex), or the applied one when the file is missing.
    pub checksum: String,
    /// The checksum recorded when it was applied, when it differs from the file's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_on: Option<String>,
}

pub fn hex(checksum: u64) -> String {
    format!("{checksum:016x}")
}

/// Compares the files with the history: one entry per version, in version order.
pub fn status(files: &[MigrationFile], applied: &[Applied]) -> Vec<Entry> {
    let last_applied = applied.iter().map(|a| a.version).max();
    let mut out: Vec<Entry> = Vec::new();
    for f in files {
        let a = applied.iter().find(|a| a.version == f.version);
        let state = match a {
            Some(a) if a.checksum == f.checksum && a.name == f.name => State::Applied,
            Some(_) => State::Changed,
            None if last_applied.is_some_and(|l| l > f.version) => State::OutOfOrder,
            None => State::Pending,
        };
        out.push(Entry {
            version: f.version,
            name: f.name.clone(),
            file: f.file.clone(),
            state,
            checksum: hex(f.checksum),
            applied_checksum: a
                .filter(|_| state == State::Changed)
                .map(|a| hex(a.checksum)),
            applied_on: a.map(|a| a.applied_on.clone()),
        });
    }
    for a in applied {
        if !files.iter().any(|f| f.version == a.version) {
            out.push(Entry {
                version: a.version,
                name: a.name.clone(),
                file: format!("V{}__{}.sql", a.version, a.name),
                state: State::Missing,
                checksum: hex(a.checksum),
                applied_checksum: None,
                applied_on: Some(a.applied_on.clone()),
            });
        }
    }
    out.sort_by_key(|e| e.version);
    out
}

/// The migrations to apply, in order; an error names the first file that makes the history wrong.
pub fn pending<'a>(
    files: &'a [MigrationFile],
    applied: &[Applied],
    dir_shown: &str,
) -> Result<Vec<&'a MigrationFile>, UserError> {
    let entries = status(files, applied);
    if let Some(e) = entries
        .iter()
        .find(|e| e.state != State::Applied && e.state != State::Pending)
    {
        return Err(match e.state {
            State::Changed => UserError::new(format!(
                "{} was changed after it was applied (checksum {} now, {} when applied on {})",
                e.file,
                e.checksum,
                e.applied_checksum.as_deref().unwrap_or("?"),
                e.applied_on.as_deref().unwrap_or("?")
            ))
            .hint("restore the applied text (e.g. `git checkout` it) and put the change in a new migration: `stackctl migrate new NAME`"),
            State::Missing => UserError::new(format!(
                "{} was applied (on {}) but is no longer in {dir_shown}",
                e.file,
                e.applied_on.as_deref().unwrap_or("?")
            ))
            .hint("restore the file; applied migrations are never removed"),
            _ => UserError::new(format!(
                "{} is not applied, but a later version is: migrations must be applied in version order",
                e.file
            ))
            .hint("rename it to the next free version: `stackctl migrate new NAME` prints it"),
        });
    }
    let wanted: Vec<i32> = entries
        .iter()
        .filter(|e| e.state == State::Pending)
        .map(|e| e.version)
        .collect();
    Ok(files
        .iter()
        .filter(|f| wanted.contains(&f.version))
        .collect())
}

/// The file name for `migrate new NAME`: the next version after every file in the directory.
pub fn next_file_name(files: &[MigrationFile], name: &str) -> Result<String, UserError> {
    let clean: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>()
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if clean.is_empty() {
        return Err(UserError::new(format!(
            "`{name}` has no letters or digits to name a migration with"
        )));
    }
    let next = files
        .iter()
        .map(|f| f.version)
        .max()
        .unwrap_or(0)
        .checked_add(1)
        .ok_or_else(|| {
            UserError::new("the highest migration version is already 2147483647".to_string())
        })?;
    Ok(format!("V{next}__{clean}.sql"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(v: i32, name: &str, sql: &str) -> MigrationFile {
        MigrationFile::new(
            &format!("V{v}__{name}.sql"),
            format!("db/V{v}__{name}.sql"),
            sql.into(),
        )
        .unwrap()
    }

    fn applied(m: &MigrationFile) -> Applied {
        Applied {
            version: m.version,
            name: m.name.clone(),
            applied_on: "t".into(),
            checksum: m.checksum,
        }
    }

    #[test]
    fn names() {
        assert_eq!(parse_file_name("V1__init.sql"), Some((1, "init".into())));
        assert_eq!(
            parse_file_name("V0012__add_Orders2.sql"),
            Some((12, "add_Orders2".into()))
        );
        for bad in [
            "v1__x.sql",
            "V1_x.sql",
            "V__x.sql",
            "V1__.sql",
            "V1__a-b.sql",
            "V1__x.txt",
            "1__x.sql",
            "V99999999999__x.sql",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        assert!(MigrationFile::new("init.sql", "db/init.sql".into(), String::new()).is_err());
    }

    #[test]
    fn checksums_match_refinery() {
        let m = file(3, "x", "select 1;");
        assert_eq!(
            m.checksum,
            refinery::Migration::unapplied("V3__x", "select 1;")
                .unwrap()
                .checksum()
        );
        assert_ne!(m.checksum, file(3, "x", "select 2;").checksum);
    }

    #[test]
    fn pending_after_applied_in_order() {
        let files = vec![file(1, "a", "1"), file(2, "b", "2"), file(3, "c", "3")];
        let h = vec![applied(&files[0])];
        let p = pending(&files, &h, "db").unwrap();
        assert_eq!(p.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2, 3]);
        let all: Vec<Applied> = files.iter().map(applied).collect();
        assert!(pending(&files, &all, "db").unwrap().is_empty());
    }

    #[test]
    fn changed_missing_and_out_of_order_are_errors_naming_the_file() {
        let files = vec![file(1, "a", "1"), file(2, "b", "2")];
        let mut h = vec![applied(&files[0])];
        h[0].checksum ^= 1;
        let e = pending(&files, &h, "db").unwrap_err().to_string();
        assert!(e.contains("db/V1__a.sql") && e.contains("changed"), "{e}");

        let h = vec![applied(&files[0]), applied(&file(5, "gone", "x"))];
        let st = status(&files, &h);
        assert_eq!(
            st.iter().map(|e| e.state).collect::<Vec<_>>(),
            vec![State::Applied, State::OutOfOrder, State::Missing]
        );
        let e = pending(&files, &h, "db").unwrap_err().to_string();
        assert!(e.contains("V2__b.sql") && e.contains("order"), "{e}");
    }

    #[test]
    fn transaction_control_is_refused() {
        let e = file(1, "a", "select 1;\nCOMMIT;")
            .statements()
            .unwrap_err()
            .to_string();
        assert!(e.contains("db/V1__a.sql:2") && e.contains("COMMIT"), "{e}");
        assert!(
            file(
                1,
                "a",
                "create function f() returns int language sql begin atomic select 1; end;"
            )
            .statements()
            .is_ok()
        );
    }

    #[test]
    fn next_name() {
        let files = vec![file(1, "a", ""), file(7, "b", "")];
        assert_eq!(
            next_file_name(&files, "Add orders-table").unwrap(),
            "V8__add_orders_table.sql"
        );
        assert_eq!(next_file_name(&[], "init").unwrap(), "V1__init.sql");
        assert!(next_file_name(&[], " -- ").is_err());
    }

    #[test]
    fn platform_migrations_are_embedded_and_split() {
        let p = platform_migrations();
        assert!(p.len() >= 2);
        assert_eq!(p[0].name, "postgate");
        for m in &p {
            assert!(!m.statements().unwrap().is_empty(), "{}", m.file);
        }
    }
}
