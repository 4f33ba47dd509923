//! Runs the statement check ([`crate::check`]) for the gateway: on a few long-lived threads with
//! stacks large enough for any body postgate accepts (so no thread is created per request), and
//! with the verdicts of recent statements remembered, since applications send the same SQL text
//! again and again with different parameters. A verdict depends only on the SQL text, the
//! permissions and the tenant schema, and the cache key holds all three in full.

use crate::check::{self, CheckError};
use crate::token::Permissions;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Verdicts remembered; statements longer than [`CACHED_SQL_MAX`] bytes are checked every time.
const CACHED_VERDICTS: usize = 2048;
const CACHED_SQL_MAX: usize = 4096;

/// Stack of a checker thread: libpg_query recurses on deeply nested expressions (a 1 MiB body holds
/// ~500k nested operators) without a depth check of its own; the pages are only reserved.
const CHECKER_STACK: usize = 512 << 20;

type Verdict = Result<(), (usize, CheckError)>;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    perms: [bool; 5],
    schema: String,
    sql: String,
}

impl Key {
    fn new(sql: &str, perms: Permissions, schema: &str) -> Key {
        Key {
            perms: [
                perms.select,
                perms.insert,
                perms.update,
                perms.delete,
                perms.ddl,
            ],
            schema: schema.to_string(),
            sql: sql.to_string(),
        }
    }
}

struct Job {
    sqls: Vec<String>,
    perms: Permissions,
    schema: String,
    reply: oneshot::Sender<Verdict>,
}

pub struct Checker {
    jobs: Mutex<mpsc::Sender<Job>>,
    verdicts: Mutex<LruCache<Key, Result<(), CheckError>>>,
}

impl Checker {
    /// Starts `threads` checker threads; they end when the checker is dropped.
    pub fn new(threads: usize) -> std::io::Result<Checker> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("postgate-check-{i}"))
                .stack_size(CHECKER_STACK)
                .spawn(move || {
                    loop {
                        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        let verdict = std::panic::catch_unwind(|| {
                            job.sqls.iter().enumerate().try_for_each(|(i, sql)| {
                                check::check(sql, job.perms, &job.schema).map_err(|e| (i, e))
                            })
                        })
                        .unwrap_or_else(|_| Err((0, unchecked())));
                        let _ = job.reply.send(verdict);
                    }
                })?;
        }
        Ok(Checker {
            jobs: Mutex::new(tx),
            verdicts: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHED_VERDICTS).expect("non-zero"),
            )),
        })
    }

    /// The first statement of `sqls` that `perms` on `schema` may not run, with its index.
    pub async fn check(&self, sqls: &[&str], perms: Permissions, schema: &str) -> Verdict {
        let mut unknown = Vec::new();
        {
            let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
            for (i, sql) in sqls.iter().enumerate() {
                match verdicts.get(&Key::new(sql, perms, schema)) {
                    Some(Ok(())) => {}
                    // Statements before `i` passed or are still unknown: check those first so that
                    // the error names the first statement that fails.
                    Some(Err(e)) if unknown.is_empty() => return Err((i, e.clone())),
                    _ => unknown.push(i),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            sqls: unknown.iter().map(|&i| sqls[i].to_string()).collect(),
            perms,
            schema: schema.to_string(),
            reply,
        };
        if self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .is_err()
        {
            return Err((0, unchecked()));
        }
        let verdict = answer.await.unwrap_or_else(|_| Err((0, unchecked())));
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        // Statements before the failing one passed; the failing one is remembered too.
        let checked = match &verdict {
            Ok(()) => unknown.len(),
            Err((j, _)) => *j + 1,
        };
        for (n, &i) in unknown.iter().take(checked).enumerate() {
            if sqls[i].len() > CACHED_SQL_MAX {
                continue;
            }
            let v = match &verdict {
                Err((j, e)) if *j == n => Err(e.clone()),
                _ => Ok(()),
            };
            verdicts.put(Key::new(sqls[i], perms, schema), v);
        }
        verdict.map_err(|(j, e)| (unknown[j], e))
    }
}

fn unchecked() -> CheckError {
    CheckError::Denied("the statement could not be checked".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(list: &[&str]) -> Permissions {
        Permissions::from_list(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("permissions")
    }

    #[tokio::test]
    async fn verdicts_match_the_check_and_are_remembered_per_permission_set() {
        let checker = Checker::new(1).expect("checker");
        let read = perms(&["SELECT"]);
        let write = perms(&["SELECT", "INSERT"]);
        let insert = "INSERT INTO t VALUES (1)";
        for _ in 0..2 {
            assert_eq!(checker.check(&["SELECT 1"], read, "acme").await, Ok(()));
            let denied = checker.check(&[insert], read, "acme").await;
            assert_eq!(
                denied,
                Err((0, check::check(insert, read, "acme").unwrap_err()))
            );
            assert_eq!(checker.check(&[insert], write, "acme").await, Ok(()));
        }
        // Another tenant's schema named in the SQL: the verdict depends on the schema too.
        let other = "SELECT * FROM beta.t";
        assert!(checker.check(&[other], read, "acme").await.is_err());
        assert_eq!(checker.check(&[other], read, "beta").await, Ok(()));
        assert_eq!(checker.verdicts.lock().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn a_batch_names_its_first_bad_statement_cached_or_not() {
        let checker = Checker::new(2).expect("checker");
        let read = perms(&["SELECT"]);
        let batch = ["SELECT 1", "SELECT 2", "DELETE FROM t", "BEGIN"];
        for _ in 0..2 {
            let (i, _) = checker.check(&batch, read, "acme").await.unwrap_err();
            assert_eq!(i, 2);
        }
        // With the failing statement cached and an unknown one before it, the unknown one is
        // checked first and is the one reported.
        let (i, e) = checker
            .check(&["COPY t TO STDOUT", "DELETE FROM t"], read, "acme")
            .await
            .unwrap_err();
        assert_eq!(
            (i, e),
            (
                0,
                check::check("COPY t TO STDOUT", read, "acme").unwrap_err()
            )
        );
    }
}
