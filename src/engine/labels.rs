//! Names and labels of what the engine creates: Compose's own, so that `docker compose -p NAME
//! ps | logs | down` see the stack, and so that `down` removes exactly what `up` made (found by
//! the project label, never by name alone).
//!
//! One-off containers (a `migrate` run, an import tool) get a random suffix from
//! [`oneoff_name`], the one place that makes such names.

use std::collections::HashMap;

use crate::compose::{Project, Service};

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
pub const LABEL_HASH: &str = "com.docker.compose.config-hash";
const LABEL_VERSION: &str = "com.docker.compose.version";
/// Which stackctl process made a one-off task: its Ctrl-C handler removes its own tasks and never
/// another run's (a second import, or a test beside it, in the same project).
pub const LABEL_INVOCATION: &str = "io.stackctl.invocation";

pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

pub fn network_name(project: &str, network: &str) -> String {
    format!("{project}_{network}")
}

pub fn volume_name(project: &str, volume: &str) -> String {
    format!("{project}_{volume}")
}

/// The name of a one-off container of `what` (a service or a task's purpose), like Compose's
/// `docker compose run`: `PROJECT-WHAT-run-` and 8 random hex digits.
pub fn oneoff_name(project: &str, what: &str) -> String {
    format!("{project}-{what}-run-{}", random_suffix())
}

/// This process's invocation id (random, made once): the value of [`LABEL_INVOCATION`].
pub fn invocation_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| format!("{}-{}", std::process::id(), random_suffix()))
}

/// 8 random lowercase hex digits.
fn random_suffix() -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..8)
        .map(|_| char::from(b"0123456789abcdef"[r.random_range(0..16)]))
        .collect()
}

fn compose_version() -> String {
    format!("stackctl-{}", env!("CARGO_PKG_VERSION"))
}

/// The labels of a project network (`kind` "network") or volume (`kind` "volume") named `name`
/// in the Compose file.
pub fn resource_labels(project: &str, kind: &str, name: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_PROJECT.to_string(), project.to_string()),
        (format!("com.docker.compose.{kind}"), name.to_string()),
        (LABEL_VERSION.to_string(), compose_version()),
    ])
}

/// The labels of a one-off task container (an import tool): enough for `down` to find it by
/// project, and for `remove_tasks` to find this process's own.
pub fn task_labels(project: &str, purpose: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_PROJECT.to_string(), project.to_string()),
        (LABEL_SERVICE.to_string(), purpose.to_string()),
        (LABEL_ONEOFF.to_string(), "True".to_string()),
        (LABEL_INVOCATION.to_string(), invocation_id().to_string()),
    ])
}

/// Which replica of which service a container is, and what it was made from.
pub struct Replica<'a> {
    pub service: &'a str,
    pub number: u32,
    pub config_hash: &'a str,
    pub image_id: &'a str,
    pub oneoff: bool,
}

/// The labels of a service's container: the service's own, then Compose's (which win).
pub fn container_labels(project: &Project, svc: &Service, r: &Replica) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = svc
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let depends: Vec<String> = svc
        .depends_on
        .iter()
        .map(|(d, c)| format!("{d}:{}:false", c.condition.as_str()))
        .collect();
    for (k, v) in [
        (LABEL_PROJECT, project.name.clone()),
        (LABEL_SERVICE, r.service.to_string()),
        (LABEL_NUMBER, r.number.to_string()),
        (
            LABEL_ONEOFF,
            if r.oneoff { "True" } else { "False" }.to_string(),
        ),
        (LABEL_HASH, r.config_hash.to_string()),
        (
            "com.docker.compose.project.working_dir",
            project.working_dir.display().to_string(),
        ),
        (
            "com.docker.compose.project.config_files",
            project.config_file.display().to_string(),
        ),
        ("com.docker.compose.depends_on", depends.join(",")),
        ("com.docker.compose.image", r.image_id.to_string()),
        (LABEL_VERSION, compose_version()),
    ] {
        labels.insert(k.to_string(), v);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_labels_name_this_process_and_the_same_one_each_time() {
        let a = task_labels("demo", "import-dump");
        let b = task_labels("demo", "import-restore");
        let id = &a[LABEL_INVOCATION];
        assert!(id.starts_with(&format!("{}-", std::process::id())), "{id}");
        assert_eq!(id, &b[LABEL_INVOCATION]);
        assert_eq!(a[LABEL_ONEOFF], "True");
        assert_eq!(a[LABEL_PROJECT], "demo");
    }

    #[test]
    fn oneoff_names_are_compose_like_and_differ() {
        let a = oneoff_name("demo", "migrate");
        let b = oneoff_name("demo", "migrate");
        let suffix = a.strip_prefix("demo-migrate-run-").unwrap();
        assert_eq!(suffix.len(), 8);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn resource_labels_name_project_and_resource() {
        let l = resource_labels("demo", "volume", "pgdata");
        assert_eq!(l[LABEL_PROJECT], "demo");
        assert_eq!(l["com.docker.compose.volume"], "pgdata");
        assert!(l[LABEL_VERSION].starts_with("stackctl-"));
    }
}
