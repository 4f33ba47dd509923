//! stackctl's service groups: the templates label each service `dev.stackctl.group` (`core`,
//! `backup`, `apps`, `observability`) and `up --without GROUP` leaves a group's services out.
//!
//! This is our policy, not Compose (`docker compose` reads the label like any other), so it lives
//! apart from `compose`; and it decides what to run, not how, so it is not `engine` either. It adds
//! `Service::group` and `Project::select` to the Compose types, on top of `compose`'s dependency
//! closure; `compose` does not know it exists.

use anyhow::{Result, bail};

use crate::compose::{Project, Service};
use crate::error::UserError;

pub const GROUP_LABEL: &str = "dev.stackctl.group";

/// The groups the templates write: `--without` accepts them even if no service of the file is in one.
const KNOWN_GROUPS: [&str; 4] = ["core", "backup", "apps", "observability"];

impl Service {
    pub fn group(&self) -> Option<&str> {
        self.labels.get(GROUP_LABEL).map(String::as_str)
    }
}

impl Project {
    /// The services to run: `only` (plus what they depend on), minus the services of `without` groups.
    pub fn select(&self, only: &[String], without: &[String]) -> Result<Vec<String>> {
        let services = &self.file.services;
        self.require_services(only)?;
        let mut groups: Vec<&str> = KNOWN_GROUPS.to_vec();
        groups.extend(services.values().filter_map(Service::group));
        for w in without {
            if !groups.contains(&w.as_str()) {
                groups.sort();
                groups.dedup();
                bail!(
                    UserError::new(format!("--without {w}: there is no group `{w}`"))
                        .hint(format!("groups: {}", groups.join(", ")))
                );
            }
        }
        // Naming services (`only`) takes them whatever their group.
        let chosen = self.dependency_closure(only, |svc| {
            only.is_empty() && svc.group().is_some_and(|g| without.iter().any(|w| w == g))
        });
        // A service that a kept service depends on cannot be left out.
        for s in &chosen {
            for d in services[s].depends_on.keys() {
                if let Some(g) = services[d]
                    .group()
                    .filter(|g| without.iter().any(|w| w == g))
                {
                    bail!(UserError::new(format!(
                        "service `{s}` depends on `{d}`, which is in the group `{g}` left out by --without {g}"
                    )));
                }
            }
        }
        Ok(self.in_file_order(&chosen))
    }
}

#[cfg(test)]
mod tests {
    use crate::compose::fixture::{SMALL, vars};
    use crate::compose::{Project, parse};

    #[test]
    fn select_follows_dependencies_and_groups() {
        let f = parse(SMALL, &vars(&[("PW", "x")])).unwrap();
        let p = Project {
            name: "demo".into(),
            working_dir: "/w".into(),
            config_file: "/w/c.yml".into(),
            file: f,
        };
        assert_eq!(p.select(&["job".into()], &[]).unwrap(), ["db", "job"]);
        assert_eq!(p.select(&[], &[]).unwrap(), ["db", "job"]);
        assert!(
            p.select(&[], &["core".into()])
                .unwrap_err()
                .to_string()
                .contains("depends on `db`")
        );
        assert!(p.select(&["x".into()], &[]).is_err());
        assert_eq!(
            p.select(&[], &["observability".into()]).unwrap(),
            ["db", "job"]
        );
        assert!(
            p.select(&[], &["observabilty".into()])
                .unwrap_err()
                .to_string()
                .contains("no group")
        );
    }
}
