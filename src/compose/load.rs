//! Reading a Compose file into a checked `Project`: YAML, then interpolation, then the typed
//! parse, then the references between its parts (`depends_on`, networks, volumes, configs).
//!
//! Anything outside the subset is refused with the key and the service named: the engine never
//! silently ignores part of the file it was asked to run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_yaml::Value;

use super::fields::{Condition, VolumeSource};
use super::interpolate::interpolate_value;
use super::types::ComposeFile;
use crate::error::UserError;

/// The project as the engine runs it: the file, its directory and its name.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub working_dir: PathBuf,
    pub config_file: PathBuf,
    pub file: ComposeFile,
}

impl Project {
    /// Reads, interpolates and checks a Compose file.
    pub fn load(
        path: &Path,
        vars: &BTreeMap<String, String>,
        default_name: &str,
    ) -> Result<Project> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file = parse(&text, vars).map_err(|e| {
            let mut u = UserError::new(format!("{}: {e:#}", path.display()));
            u.hint = crate::error::hint_of(&e).map(str::to_string);
            anyhow!(u)
        })?;
        let working_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let working_dir = std::fs::canonicalize(&working_dir).unwrap_or(working_dir);
        let config_file = working_dir.join(path.file_name().unwrap_or_default());
        let name = file
            .name
            .clone()
            .unwrap_or_else(|| default_name.to_string());
        Ok(Project {
            name,
            working_dir,
            config_file,
            file,
        })
    }

    /// Absolute host path of a bind mount or config file written relative to the project.
    pub fn host_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.working_dir.join(p)
        }
    }
}

/// Parses and interpolates Compose text.
pub fn parse(text: &str, vars: &BTreeMap<String, String>) -> Result<ComposeFile> {
    let mut value: Value = serde_yaml::from_str(text).context("the file is not valid YAML")?;
    interpolate_value(&mut value, vars, "")?;
    let file: ComposeFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let service = path.strip_prefix("services.").and_then(|rest| rest.split('.').next());
        if let Some(key) = inner.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
            let wher = match service {
                Some(s) if path == format!("services.{s}") || path == format!("services.{s}.{key}") => format!("service `{s}`"),
                Some(s) => format!("`{path}` (service `{s}`)"),
                None if path.is_empty() || path == "." || path == key => "the top level".to_string(),
                None => format!("`{path}`"),
            };
            anyhow!(
                UserError::new(format!("unsupported Compose key `{key}` in {wher}: stackctl's engine does not implement it"))
                    .hint("remove the key, or run this file with `docker compose` instead")
            )
        } else {
            anyhow!("{path}: {inner}")
        }
    })?;
    check(&file)?;
    Ok(file)
}

fn check(f: &ComposeFile) -> Result<()> {
    for (name, s) in &f.services {
        for d in s.depends_on.keys() {
            if !f.services.contains_key(d) {
                bail!("service `{name}` depends on `{d}`, which is not a service of the file");
            }
            if s.depends_on[d].condition == Condition::ServiceHealthy
                && f.services[d].healthcheck.is_none()
            {
                bail!(
                    "service `{name}` waits for `{d}` to be healthy, but `{d}` has no healthcheck"
                );
            }
        }
        for n in s.networks.keys() {
            if !f.networks.contains_key(n) {
                bail!(
                    "service `{name}` uses network `{n}`, which is not declared under top-level `networks`"
                );
            }
        }
        for v in &s.volumes {
            if let VolumeSource::Named(v) = &v.source
                && !f.volumes.contains_key(v)
            {
                bail!(
                    "service `{name}` uses volume `{v}`, which is not declared under top-level `volumes`"
                );
            }
        }
        for c in &s.configs {
            if !f.configs.contains_key(&c.source) {
                bail!(
                    "service `{name}` uses config `{}`, which is not declared under top-level `configs`",
                    c.source
                );
            }
        }
    }
    // depends_on must be acyclic.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(f: &'a ComposeFile, s: &'a str, state: &mut BTreeMap<&'a str, u8>) -> Result<()> {
        match state.get(s) {
            Some(2) => return Ok(()),
            Some(1) => bail!("depends_on has a cycle through service `{s}`"),
            _ => {}
        }
        state.insert(s, 1);
        for d in f.services[s].depends_on.keys() {
            visit(f, d, state)?;
        }
        state.insert(s, 2);
        Ok(())
    }
    for s in f.services.keys() {
        visit(f, s, &mut state)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::compose::fields::VolumeMount;
    use crate::compose::fixture::{SMALL, vars};
    use crate::compose::types::Restart;

    #[test]
    fn parses_the_subset() {
        let f = parse(SMALL, &vars(&[("PW", "s3cret")])).unwrap();
        let db = &f.services["db"];
        assert_eq!(db.command.as_deref().unwrap(), ["sleep", "infinity"]);
        assert_eq!(db.environment["PASSWORD"].as_deref(), Some("s3cret"));
        assert_eq!(db.environment["PORT"].as_deref(), Some("5432"));
        assert_eq!(db.volumes[0].source, VolumeSource::Named("data".into()));
        assert_eq!(
            db.volumes[1],
            VolumeMount {
                source: VolumeSource::Bind("./conf".into()),
                target: "/conf".into(),
                read_only: true
            }
        );
        assert_eq!(db.ports[1].host_port, None);
        assert_eq!(db.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
        let hc = db.healthcheck.as_ref().unwrap();
        assert_eq!(hc.interval, Some(Duration::from_secs(90)));
        assert_eq!(hc.start_period, Some(Duration::from_millis(500)));
        assert_eq!(db.configs[0].mode, Some(0o400));
        assert_eq!(db.networks["net"].aliases, ["pooler"]);
        assert_eq!(db.replicas(), 2);
        assert_eq!(db.group(), Some("core"));
        let job = &f.services["job"];
        assert_eq!(job.restart, Some(Restart::No));
        assert_eq!(job.environment["B"], None);
        assert_eq!(job.depends_on["db"].condition, Condition::ServiceHealthy);
        assert!(f.volumes.contains_key("data"));
    }

    #[test]
    fn missing_required_variable_is_an_error() {
        let err = format!("{:#}", parse(SMALL, &vars(&[])).unwrap_err());
        assert!(
            err.contains("required variable PW") && err.contains("set PW"),
            "{err}"
        );
        assert!(err.contains("services.db.environment.PASSWORD"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_with_service_and_key() {
        let text = SMALL.replace(
            "    restart: \"no\"\n",
            "    restart: \"no\"\n    privileged: true\n",
        );
        let err = parse(&text, &vars(&[("PW", "x")])).unwrap_err().to_string();
        assert!(
            err.contains("`privileged`") && err.contains("service `job`"),
            "{err}"
        );
        let text = format!("{SMALL}secrets: {{}}\n");
        let err = parse(&text, &vars(&[("PW", "x")])).unwrap_err().to_string();
        assert!(
            err.contains("`secrets`") && err.contains("top level"),
            "{err}"
        );
        let text = SMALL.replace(
            "      interval: 1m30s\n",
            "      interval: 1m30s\n      start_interval: 1s\n",
        );
        let err = parse(&text, &vars(&[("PW", "x")])).unwrap_err().to_string();
        assert!(
            err.contains("`start_interval`") && err.contains("service `db`"),
            "{err}"
        );
        let text = SMALL.replace(
            "        aliases: [pooler]\n",
            "        aliases: [pooler]\n        ipv4_address: 1.2.3.4\n",
        );
        let err = format!("{:#}", parse(&text, &vars(&[("PW", "x")])).unwrap_err());
        assert!(
            err.contains("ipv4_address") && err.contains("services.db.networks"),
            "{err}"
        );
    }

    #[test]
    fn references_are_checked() {
        let text = SMALL.replace(
            "db: {condition: service_healthy}",
            "nope: {condition: service_started}",
        );
        assert!(
            parse(&text, &vars(&[("PW", "x")]))
                .unwrap_err()
                .to_string()
                .contains("`nope`")
        );
        let text = SMALL.replace("\"data:/data\"", "\"other:/data\"");
        assert!(
            parse(&text, &vars(&[("PW", "x")]))
                .unwrap_err()
                .to_string()
                .contains("volume `other`")
        );
    }

    /// The contract: every file `render` can produce is inside the subset the engine runs.
    #[test]
    fn every_rendered_compose_file_parses() {
        use crate::config::{PoolerKind, StackFile};
        use crate::render::{Target, compose, config_files};
        use crate::secrets::{EnvFile, SECRETS};
        let values: BTreeMap<String, String> = SECRETS
            .iter()
            .map(|s| (s.key.to_string(), "secretvalue123".to_string()))
            .collect();
        let env = EnvFile {
            values: values.clone(),
            ..Default::default()
        };
        for pooler in [PoolerKind::Pgbouncer, PoolerKind::Pgcat] {
            for target in [Target::Local, Target::Dokploy] {
                let mut file = StackFile::default();
                file.pooler.kind = pooler;
                let stack = crate::config::Stack::from_file(Path::new("/tmp/x"), file).unwrap();
                let configs = config_files(&stack, &env).unwrap();
                let text = compose(&stack, target, &configs, "./", &Default::default()).unwrap();
                let f = parse(&text, &values)
                    .unwrap_or_else(|e| panic!("{pooler:?} {target:?}: {e:#}"));
                assert!(f.services.contains_key(pooler.service_name()));
                assert_eq!(f.services["runner"].replicas(), 3);
                assert_eq!(
                    f.services["migrate"].environment["PGPASSWORD"].as_deref(),
                    Some("secretvalue123")
                );
                if target == Target::Dokploy {
                    assert!(f.networks["dokploy-network"].external);
                    assert!(f.services["postgres"].ports.is_empty());
                    let rule = f.services["runner"]
                        .labels
                        .iter()
                        .find(|(k, _)| k.ends_with("-workers.rule"))
                        .unwrap()
                        .1;
                    assert!(rule.ends_with("$`)"), "$$ is a literal $: {rule}");
                }
            }
        }
    }
}
