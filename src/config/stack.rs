//! The validated `Stack`: a checked `stack.toml` (defaults when there is none), the directory it
//! lives in and the values derived from it, such as the host names of the routed services.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::parse::{line_of_key, parse_stack_file};
use super::sections::{PoolerKind, StackFile};
use super::validate::validate;
use crate::error::UserError;
use crate::secrets::EnvFile;

pub const STACK_FILE: &str = "stack.toml";
pub const ENV_FILE: &str = ".env";

/// The validated stack: configuration plus the paths it lives at.
#[derive(Debug, Clone)]
pub struct Stack {
    pub dir: PathBuf,
    pub file: StackFile,
    /// Resolved host names (defaults filled in).
    pub hosts: Hosts,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hosts {
    pub postgate: String,
    pub runner: String,
    pub workers: String,
    pub grafana: String,
}

impl Stack {
    /// Loads `stack.toml` from `dir` (defaults when absent) and validates it.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(STACK_FILE);
        let (file, text) = match fs::read_to_string(&path) {
            Ok(text) => (parse_stack_file(&text, &path)?, Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (StackFile::default(), None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Self::build(dir, file, text.as_deref())
    }

    /// Validates a `StackFile` and resolves its derived values.
    pub fn from_file(dir: &Path, file: StackFile) -> Result<Self> {
        Self::build(dir, file, None)
    }

    /// Validates `file`; given the file's `text`, an error also names the line of the bad key.
    fn build(dir: &Path, file: StackFile, text: Option<&str>) -> Result<Self> {
        let where_ = dir.join(STACK_FILE);
        validate(&file).map_err(|(key, e)| {
            let line = key.and_then(|k| text.and_then(|t| line_of_key(t, k)));
            let at = line.map(|l| format!(":{l}")).unwrap_or_default();
            UserError::new(format!("{}{at}: {}", where_.display(), e.message))
                .hint(e.hint.unwrap_or_default())
        })?;
        let d = &file.project.domain;
        let pick = |set: &str, default: String| {
            if set.is_empty() {
                default
            } else {
                set.to_string()
            }
        };
        let hosts = Hosts {
            postgate: pick(&file.domains.postgate, format!("postgate.{d}")),
            runner: pick(&file.domains.runner, format!("runner.{d}")),
            workers: pick(&file.domains.workers, format!("workers.{d}")),
            grafana: pick(&file.domains.grafana, format!("grafana.{d}")),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            hosts,
        })
    }

    pub fn env_path(&self) -> PathBuf {
        self.dir.join(ENV_FILE)
    }

    /// Loads `.env` and checks that it holds every secret.
    pub fn load_env(&self) -> Result<EnvFile> {
        let env = EnvFile::load(&self.env_path())?;
        env.require_all()?;
        Ok(env)
    }

    pub fn project(&self) -> &str {
        &self.file.project.name
    }

    pub fn pooler(&self) -> PoolerKind {
        self.file.pooler.kind
    }

    /// Whether Prometheus and the exporters run: `[metrics] enabled` inside an enabled
    /// `[observability]` group.
    pub fn metrics_enabled(&self) -> bool {
        self.file.observability.enabled && self.file.metrics.enabled
    }

    /// Where Grafana and Prometheus answer, one line each (for `stackctl status`): on loopback
    /// with the `local` target; on Dokploy only Grafana is routed (Prometheus stays inside).
    pub fn observability_endpoints(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.file.observability.enabled {
            out.push(format!(
                "grafana     http://127.0.0.1:{}/  (Dokploy: https://{}/)",
                self.file.ports.grafana, self.hosts.grafana
            ));
        }
        if self.metrics_enabled() {
            out.push(format!(
                "prometheus  http://127.0.0.1:{}/  (Dokploy: http://prometheus:9090 inside the stack's network only)",
                self.file.ports.prometheus
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let s = Stack::from_file(Path::new("/x"), StackFile::default()).unwrap();
        assert_eq!(s.hosts.grafana, "grafana.localhost");
        assert_eq!(s.file.runner.replicas, 3);
        assert_eq!(s.pooler(), PoolerKind::Pgcat);
        assert_eq!(s.file.postgate.max_rows, 10_000);
    }

    #[test]
    fn postgate_limits_are_checked_with_their_line() {
        let text = "[postgate]\nmax_rows = 10\npool_size = 0\n";
        let file = parse_stack_file(text, Path::new("stack.toml")).unwrap();
        let err = Stack::build(Path::new("."), file, Some(text))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stack.toml:3: postgate.pool_size is 0"),
            "{err}"
        );
        let err = parse_stack_file("[postgate]\nmax_row = 1\n", Path::new("stack.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stack.toml:2") && err.contains("max_row"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let text = "[project]\nname = \"a\"\n\n[pooler]\nkind = \"nope\"\n";
        let err = parse_stack_file(text, Path::new("stack.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("stack.toml:5: pooler.kind:"), "{err}");
        let text = "[project]\nname = \"a\"\ndomain = \"bad_domain!\"\n";
        let file = parse_stack_file(text, Path::new("stack.toml")).unwrap();
        let err = Stack::build(Path::new("."), file, Some(text))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stack.toml:3: project.domain `bad_domain!`"),
            "{err}"
        );
    }
}
