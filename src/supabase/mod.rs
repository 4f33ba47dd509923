//! `stackctl import-supabase`: move a Supabase project's database into the stack, verified.
//!
//! One run, in order (docs/import-supabase.md has the why of each step):
//! 1. preflight: the source's inventory, read in a read-only repeatable-read transaction whose
//!    snapshot pg_dump then dumps (so counts and dump agree), and what the target offers; the
//!    report is printed, and that is all `--dry-run` does; objects that need an extension the
//!    target lacks (`ext_dependents`) stop the run here, unless they are to be left out;
//! 2. safety: target schemas that already hold objects are refused unless `--clean --yes`
//!    (or they were filled by an unfinished run of this same import, which is resumed);
//! 3. dump (`tools`, in a container of the stack's postgres image) into the state directory,
//!    counting every table's rows in the same snapshot meanwhile; kept until a verified import;
//!    only once it succeeded does `--clean` (or a resume) drop anything in the target;
//! 4. the compatibility layer (`compat`), a filtered table of contents (`toc`, `plan`), the
//!    restore as db_migrator, the API roles' grants, the role bootstrap again, ANALYZE;
//! 5. verification (`verify`), printed as a table or JSON (`report`); any difference fails.

mod access;
mod compat;
mod ext_dependents;
mod inventory;
mod managed;
mod plan;
mod report;
mod safety;
mod source;
mod state;
mod toc;
mod tools;
mod verify;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Stack;
use crate::db::bootstrap;
use crate::db::connect::{self, Target};
use crate::engine::Docker;
use crate::error::UserError;
use crate::secrets::EnvFile;
use inventory::Inventory;
use state::{Files, State};
use tools::Tools;

const APP: &str = "stackctl import-supabase";

/// An import's options (the command line's, less its confirmations).
pub struct Options {
    /// The source database URL (or `dump`).
    pub from: Option<String>,
    /// A pg_dump custom-format archive to restore instead of dumping a source.
    pub dump: Option<PathBuf>,
    /// Only these schemas (empty: every schema Supabase does not manage).
    pub schemas: Vec<String>,
    /// Parallel pg_restore jobs.
    pub jobs: u32,
    pub dry_run: bool,
    pub skip_auth_users: bool,
    /// Leave out the objects that depend on extensions the target lacks (else: refuse).
    pub leave_out_missing_extensions: bool,
    /// Drop the target's schemas that the import writes first (confirmed by the caller).
    pub clean: bool,
    /// The target as a superuser URL (default: the stack's own postgres on its loopback port).
    pub database_url: Option<String>,
    pub json: bool,
}

/// Runs an import; Ctrl-C removes its tool containers and any unfinished dump. With `--json`,
/// stdout holds one JSON object every time: the report, or, when the run fails before it can
/// print one, `{ "error", "stage", "hint" }`.
pub async fn run(stack: &Stack, env: &EnvFile, docker: &Docker, opts: Options) -> Result<()> {
    let json = opts.json;
    let run = Run::default();
    let result = tokio::select! {
        r = run_import(stack, env, docker, opts, &run) => r,
        _ = tokio::signal::ctrl_c() => {
            // pg_dump / pg_restore may be running in a container: remove it by label.
            // What was written stays for the next run to resume (or replace).
            crate::engine::remove_tasks(docker, stack.project(), "import-").await?;
            // An unfinished dump is never reused, and holds user data.
            if let Ok(entries) = std::fs::read_dir(tools::state_dir(&stack.dir)) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().ends_with(".dump.partial") {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            Err(UserError::new("interrupted")
                .hint("run the same command again: a finished dump is reused, a restore is resumed")
                .into())
        }
    };
    if let (true, false, Err(e)) = (json, run.reported.get(), &result) {
        println!(
            "{}",
            serde_json::to_string_pretty(&failure(e, run.stage.get()))?
        );
    }
    result
}

/// Where a run is, for the JSON a failed `--json` run prints.
struct Run {
    /// preflight, safety, dump, clean, restore, verify.
    stage: Cell<&'static str>,
    /// Whether the JSON report is already on stdout.
    reported: Cell<bool>,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            stage: Cell::new("preflight"),
            reported: Cell::new(false),
        }
    }
}

/// A failure as `--json` prints it.
#[derive(Serialize)]
struct Failure {
    error: String,
    stage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

fn failure(e: &anyhow::Error, stage: &'static str) -> Failure {
    Failure {
        error: format!("{e:#}"),
        stage,
        hint: crate::error::hint_of(e).map(str::to_string),
    }
}

/// Progress, on stderr so that stdout holds only the report (or the JSON).
macro_rules! step {
    ($($t:tt)*) => { eprintln!("import: {}", format!($($t)*)) };
}

#[derive(Serialize)]
struct JsonOut<'a> {
    preflight: &'a report::Preflight,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<&'a verify::Verification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
    /// Set when the verification found differences (the run fails).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    failure: Option<Failure>,
}

/// The stack's own PostgreSQL, on the loopback port `stackctl up` publishes.
fn stack_target(stack: &Stack, env: &EnvFile) -> Result<Target> {
    let pw = env.get("POSTGRES_PASSWORD").unwrap_or_default();
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(stack.file.ports.postgres)
        .user("postgres")
        .password(pw)
        .dbname(&stack.file.postgres.database)
        .application_name(APP)
        .connect_timeout(std::time::Duration::from_secs(10));
    Ok(Target { config })
}

async fn run_import(
    stack: &Stack,
    env: &EnvFile,
    docker: &Docker,
    a: Options,
    run: &Run,
) -> Result<()> {
    let started = Instant::now();
    env.require_all()?;
    let dir = stack.dir.as_path();
    let passwords: BTreeMap<String, String> = bootstrap::LOGINS
        .iter()
        .map(|(role, _)| {
            (
                role.to_string(),
                env.role_password(role).unwrap_or_default().to_string(),
            )
        })
        .collect();
    let (target, target_hint) = match &a.database_url {
        Some(u) => (
            source::parse_url(u, "--database-url", APP)?,
            "check --database-url",
        ),
        None => (
            stack_target(stack, env)?,
            "is the stack up? Run `stackctl up` first, or pass --database-url",
        ),
    };
    let source = match &a.from {
        Some(u) => {
            let t = source::parse_url(u, "--from", APP)?;
            source::refuse_transaction_pooler(&t)?;
            Some(t)
        }
        None => None,
    };
    let dump_file = match &a.dump {
        Some(f) => Some(std::fs::canonicalize(f).map_err(|e| {
            UserError::new(format!("cannot read the dump file {}: {e}", f.display()))
                .hint("pass a file written by `pg_dump -Fc`")
        })?),
        None => None,
    };
    let identity = match (&source, &dump_file) {
        (Some(s), _) => format!(
            "from {} schemas {:?} skip-auth-users {}",
            s.describe(),
            a.schemas,
            a.skip_auth_users
        ),
        (None, Some(f)) => {
            let m = std::fs::metadata(f)?;
            format!(
                "dump {} {} {:?} schemas {:?} skip-auth-users {}",
                f.display(),
                m.len(),
                m.modified().ok(),
                a.schemas,
                a.skip_auth_users
            )
        }
        (None, None) => unreachable!("clap requires --from or --dump"),
    };

    let state_dir = tools::state_dir(dir);
    let files = Files::new(&state_dir, &identity);
    let tools = Tools {
        docker,
        image: stack.file.images.postgres.clone(),
        project: stack.project().to_string(),
        dir: state_dir.clone(),
        dump_file: dump_file.clone(),
    };

    // The source's inventory: from an earlier run's dump, from the dump file, or a fresh snapshot.
    let prior = files.load()?;
    let reuse = source.is_some() && prior.is_some() && files.dump_path().exists();
    let mut live: Option<(tokio_postgres::Client, String)> = None;
    let mut dump_list: Option<String> = None;
    let (mut inv, snapshot): (Inventory, String) = if reuse {
        let st = prior.as_ref().expect("checked above");
        (
            st.inventory.clone(),
            format!(
                "the dump taken {} and kept by an unfinished run ({})",
                st.dumped_at,
                files.dump_path().display()
            ),
        )
    } else if let Some(src) = &source {
        let sc = source::connect(src).await.map_err(|e| {
            e.context(UserError::new(format!("connecting to the source {}", src.describe())).hint(
                "check host, port, user and password in --from (Supabase: Project Settings → Database → direct connection or session pooler)",
            ))
        })?;
        sc.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .context("starting a read-only transaction on the source")?;
        inventory::check_reader(&sc, src.user()).await?;
        let snap: String = sc
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .context("exporting the source's snapshot for pg_dump")?
            .get(0);
        let inv = inventory::collect(&sc, &a.schemas, !a.skip_auth_users).await?;
        live = Some((sc, snap));
        (inv, "a fresh read-only snapshot of the source".to_string())
    } else {
        let list = tools.list(&tools.archive(None)).await?;
        let mut inv = inventory::from_toc(&list, &a.schemas, !a.skip_auth_users)?;
        // A dump records what its foreign keys reference only in their SQL.
        let fk_list: String = list
            .lines()
            .filter(|l| toc::parse_line(l).is_some_and(|e| e.desc == "FK CONSTRAINT"))
            .map(|l| format!("{l}\n"))
            .collect();
        let fk_file = format!("{}.fk.list", files.key);
        crate::files::write_atomic(
            &state_dir.join(&fk_file),
            fk_list.as_bytes(),
            crate::files::SECRET,
        )?;
        let sql = tools.sql_of(&tools.archive(None), &fk_file).await?;
        let _ = std::fs::remove_file(state_dir.join(&fk_file));
        inventory::add_foreign_keys(&mut inv, &toc::foreign_key_targets(&sql));
        dump_list = Some(list);
        let shown = format!(
            "the dump file {}",
            a.dump.as_ref().expect("dump mode").display()
        );
        (inv, shown)
    };
    let client_version = tools.client_version().await?;
    let mut su = target.connect().await.map_err(|e| {
        e.context(
            UserError::new(format!("connecting to the target {}", target.describe()))
                .hint(target_hint),
        )
    })?;
    connect::check_superuser(&su, &target).await?;
    let (tinfo, target_version) = compat::target_info(&su).await?;
    source::check_versions(
        inv.server_version_num,
        client_version,
        target_version,
        &tools.image,
    )?;

    // What depends on the extensions the target lacks: from the source's catalog (in the dump's
    // snapshot), or the dump file's dependency records; a reused dump's inventory has them.
    let missing = ext_dependents::missing(&inv, &tinfo);
    if let Some((sc, _)) = &live {
        inv.extension_dependents =
            ext_dependents::from_catalog(sc, &inv.imported, &missing).await?;
    } else if let Some(list) = &dump_list {
        inv.extension_dependents = ext_dependents::from_toc(list, &missing);
    }
    inv.extension_dependents
        .retain(|d| missing.contains(&d.extension));

    let mut plan = plan::plan(&inv, &tinfo, a.skip_auth_users);
    let blocked = ext_dependents::apply(
        &mut plan,
        &inv.extension_dependents,
        a.leave_out_missing_extensions,
    )
    .err();
    let source_name = match (&source, &dump_file) {
        (Some(s), _) => s.describe(),
        (None, Some(f)) => f.display().to_string(),
        _ => unreachable!(),
    };
    let pre = report::preflight(
        &inv,
        &plan,
        &tinfo,
        source_name.clone(),
        target.describe(),
        snapshot,
    );
    if a.dry_run {
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&JsonOut {
                    preflight: &pre,
                    verification: None,
                    seconds: None,
                    failure: blocked.as_ref().map(|e| failure(e, "preflight")),
                })?
            );
            run.reported.set(true);
        } else {
            report::print_preflight(&pre);
            println!("dry run: nothing was written");
        }
        return blocked.map_or(Ok(()), Err);
    }
    if !a.json {
        report::print_preflight(&pre);
    }
    if let Some(e) = blocked {
        return Err(e);
    }
    run.stage.set("safety");

    // Safety: only empty schemas, ours from an unfinished run, or --clean --yes.
    let (occupied, users_exist) = compat::occupied(&su, &inv.imported).await?;
    let claim = prior
        .as_ref()
        .filter(|p| p.restoring_into.as_deref() == Some(target.describe().as_str()))
        .map(|p| safety::Claim {
            fresh_schemas: &p.fresh_schemas,
            fresh_auth_users: p.fresh_auth_users,
        });
    let observed = safety::Observed {
        occupied: &occupied,
        users_exist,
        brings_users: inv.auth_users,
        imported: &inv.imported,
    };
    let decision = safety::decide(&observed, claim.as_ref(), a.clean, &target.describe())?;
    // Dump (unless an earlier run's dump is reused), counting rows in the same snapshot meanwhile.
    let archive_file = if dump_file.is_some() {
        None
    } else {
        Some(files.dump_name())
    };
    run.stage.set("dump");
    if let (Some((sc, snap)), Some(src)) = (&live, &source) {
        step!(
            "dumping {} with pg_dump (in {})",
            src.describe(),
            tools.image
        );
        let t = Instant::now();
        let sel = plan::dump_selection(&inv, !a.schemas.is_empty(), a.skip_auth_users);
        let spec = tools::DumpSpec {
            snapshot: snap,
            include: &sel.include,
            exclude_schemas: &sel.exclude_schemas,
            exclude_tables: &inv.auth_other_tables,
            exclude_data: &sel.exclude_data,
        };
        let partial = files.partial_name();
        let (dumped, counted) = tokio::join!(
            tools.dump(src, &spec, &partial),
            inventory::count_rows(sc, &inv.tables)
        );
        if let Err(e) = dumped {
            // A partial dump is of no use and holds user data.
            let _ = std::fs::remove_file(state_dir.join(&partial));
            return Err(e);
        }
        for (t, n) in inv.tables.iter_mut().zip(counted?) {
            t.rows = Some(n);
        }
        sc.batch_execute("COMMIT")
            .await
            .context("ending the source's read-only transaction")?;
        files.commit_dump()?;
        step!(
            "dumped in {:.1}s to {}",
            t.elapsed().as_secs_f64(),
            files.dump_path().display()
        );
    } else if reuse {
        step!(
            "reusing the dump of the unfinished run: {}",
            files.dump_path().display()
        );
    }
    drop(live);

    // Only now, with the dump taken (pg_dump exited 0), is anything of the target dropped: an
    // interrupted or failed dump leaves the target as it was.
    run.stage.set("clean");
    if !decision.clean.is_empty() || decision.drop_users {
        let what = if decision.resumed {
            "resuming: removing what the unfinished run restored into"
        } else {
            "--clean: dropping what the import replaces in"
        };
        step!(
            "{what} {} ({})",
            target.describe(),
            decision.clean.join(", ")
        );
        compat::clean(&mut su, &decision.clean, decision.drop_users).await?;
    }

    let st = State {
        source: source_name.clone(),
        dumped_at: prior
            .as_ref()
            .filter(|_| reuse)
            .map(|p| p.dumped_at.clone())
            .unwrap_or_else(|| chrono::Utc::now().to_rfc3339()),
        inventory: inv.clone(),
        restoring_into: Some(target.describe()),
        fresh_schemas: decision.fresh_schemas.clone(),
        fresh_auth_users: decision.fresh_auth_users,
    };
    files.save(&st)?;
    files.release_target(&target.describe())?;

    run.stage.set("restore");
    step!("compatibility layer: roles, auth, extensions, search_path");
    for (ext, err) in
        compat::apply(&mut su, &inv.imported, &plan.extensions, !inv.auth_users).await?
    {
        plan.not_carried.push(plan::NotCarried {
            kind: "extension".into(),
            name: ext,
            reason: format!("could not be created on the target: {err}"),
        });
    }
    let archive = tools.archive(archive_file.as_deref());
    let list = tools.list(&archive).await?;
    let (filtered, kept) = toc::filter(&list, &plan.rules);
    // What depends on a missing extension is not restored: not expected by the verification.
    let (left_out, no_rows) = ext_dependents::left_out(&list, &plan.rules);
    plan.dependents_left_out = left_out;
    inv.tables
        .retain(|t| !no_rows.contains(&(t.schema.clone(), t.name.clone())));
    let api_grants = ext_dependents::grants_kept(&inv.api_grants, &list, &plan.rules);
    crate::files::write_atomic(
        &state_dir.join(files.list_name()),
        filtered.as_bytes(),
        crate::files::SECRET,
    )?;
    step!(
        "restoring {kept} entries as db_migrator with {} jobs",
        a.jobs
    );
    let t = Instant::now();
    let migrator = target.as_login("db_migrator", &passwords["db_migrator"]);
    tools
        .restore(&migrator, &archive, &files.list_name(), a.jobs)
        .await?;
    step!(
        "restored in {:.1}s; grants, role bootstrap, ANALYZE",
        t.elapsed().as_secs_f64()
    );
    let roles = match &inv.access {
        Some(source) => access::carry(source, &tinfo.roles, &compat::database(&su).await?),
        None => Vec::new(),
    };
    compat::after_restore(&mut su, &roles, &api_grants, &passwords).await?;

    run.stage.set("verify");
    let v = verify::verify(&su, &inv, &plan).await?;
    let differs = (!v.ok).then(|| {
        anyhow::Error::from(
            UserError::new(
                "verification found differences between source and target (marked DIFFERS above)",
            )
            .hint(format!(
                "the dump is kept in {}; run the same command again to restore it afresh",
                state_dir.display()
            )),
        )
    });
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&JsonOut {
                preflight: &pre,
                verification: Some(&v),
                seconds: Some(started.elapsed().as_secs_f64()),
                failure: differs.as_ref().map(|e| failure(e, "verify")),
            })?
        );
        run.reported.set(true);
    } else {
        report::print_verification(&v);
    }
    if let Some(e) = differs {
        return Err(e);
    }
    files.remove_all()?;
    if !a.json {
        println!(
            "imported {} tables into {} in {:.1}s: verified",
            inv.tables.len(),
            target.describe(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
