//! Choosing services the way `docker compose up SERVICE...` does: the ones named and,
//! transitively, every service they depend on, in the order of the file.
//!
//! Which services a stackctl group leaves out is not Compose: that policy lives in `crate::groups`
//! and hands its choice to these functions.

use anyhow::{Result, bail};

use super::load::Project;
use super::types::Service;
use crate::error::UserError;

impl Project {
    /// Refuses a name that is not a service of the file, listing the services there are.
    pub fn require_services(&self, names: &[String]) -> Result<()> {
        let services = &self.file.services;
        for s in names {
            if !services.contains_key(s) {
                let known: Vec<&str> = services.keys().map(String::as_str).collect();
                bail!(
                    UserError::new(format!("no service `{s}` in the Compose file"))
                        .hint(format!("services: {}", known.join(", ")))
                );
            }
        }
        Ok(())
    }

    /// `roots` (every service when empty) and, transitively, what they depend on, in the order
    /// they were reached. A service for which `skip` holds is neither taken nor followed.
    pub fn dependency_closure(
        &self,
        roots: &[String],
        skip: impl Fn(&Service) -> bool,
    ) -> Vec<String> {
        let services = &self.file.services;
        let mut chosen: Vec<String> = Vec::new();
        let mut stack: Vec<String> = if roots.is_empty() {
            services.keys().cloned().collect()
        } else {
            roots.to_vec()
        };
        while let Some(s) = stack.pop() {
            if chosen.contains(&s) {
                continue;
            }
            let svc = &services[&s];
            if skip(svc) {
                continue;
            }
            stack.extend(svc.depends_on.keys().cloned());
            chosen.push(s);
        }
        chosen
    }

    /// `names` in the order the file lists the services.
    pub fn in_file_order(&self, names: &[String]) -> Vec<String> {
        self.file
            .services
            .keys()
            .filter(|k| names.contains(k))
            .cloned()
            .collect()
    }
}
