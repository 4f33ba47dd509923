//! The reconcile plan: a pure function of what the Compose file wants and what Docker has.
//!
//! Per container slot (`service`, replica number): create it when missing, keep it when its config
//! hash and image match and it runs, start it when it matches but is stopped, recreate it when the
//! hash or the image changed. Containers of services no longer in the file, replicas beyond the
//! wanted count and duplicates of a slot are removed. Services that are in the file but not
//! selected (`up SERVICE`, `--without GROUP`) are left alone.
//!
//! A job (a `restart: "no"` service without healthcheck, like `migrate`) whose container exited 0
//! with the same config hash and image is kept, not run again: its inputs (the hash includes the
//! contents of a job's bind mounts) have not changed since it succeeded. Compose would run it
//! again on every `up`; `stackctl migrate` runs it on demand.

use std::collections::BTreeSet;

/// One selected service, as the file wants it.
#[derive(Debug, Clone)]
pub struct Desired {
    pub service: String,
    pub replicas: u32,
    pub config_hash: String,
    pub image_id: String,
    /// A run-to-completion service (`restart: "no"`, no healthcheck).
    pub job: bool,
}

/// One container of the project, as Docker has it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub config_hash: String,
    pub image_id: String,
    pub running: bool,
    /// Exited (not merely created) with code 0.
    pub exited_ok: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        service: String,
        number: u32,
    },
    Keep {
        service: String,
        number: u32,
        id: String,
    },
    Start {
        service: String,
        number: u32,
        id: String,
    },
    Recreate {
        service: String,
        number: u32,
        old_id: String,
        reason: String,
    },
    Remove {
        service: String,
        id: String,
        name: String,
    },
}

impl Action {
    pub fn service(&self) -> &str {
        match self {
            Action::Create { service, .. }
            | Action::Keep { service, .. }
            | Action::Start { service, .. }
            | Action::Recreate { service, .. }
            | Action::Remove { service, .. } => service,
        }
    }
}

/// Computes the actions; `in_file` is every service of the file, `desired` the selected ones.
pub fn plan(desired: &[Desired], in_file: &[String], observed: &[Observed]) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for d in desired {
        for number in 1..=d.replicas {
            let mut slot = observed
                .iter()
                .filter(|o| o.service == d.service && o.number == number);
            // Prefer a matching, running container when a slot holds several.
            let mut candidates: Vec<&Observed> = slot.by_ref().collect();
            candidates.sort_by_key(|o| {
                (
                    o.config_hash != d.config_hash || o.image_id != d.image_id,
                    !o.running,
                )
            });
            let Some(o) = candidates.first() else {
                actions.push(Action::Create {
                    service: d.service.clone(),
                    number,
                });
                continue;
            };
            used.insert(&o.id);
            let (service, id) = (d.service.clone(), o.id.clone());
            if o.config_hash != d.config_hash {
                actions.push(Action::Recreate {
                    service,
                    number,
                    old_id: id,
                    reason: "configuration changed".into(),
                });
            } else if o.image_id != d.image_id {
                actions.push(Action::Recreate {
                    service,
                    number,
                    old_id: id,
                    reason: "image changed".into(),
                });
            } else if o.running || (d.job && o.exited_ok) {
                actions.push(Action::Keep {
                    service,
                    number,
                    id,
                });
            } else {
                actions.push(Action::Start {
                    service,
                    number,
                    id,
                });
            }
        }
    }
    for o in observed {
        if used.contains(o.id.as_str()) {
            continue;
        }
        let in_file_but_unselected =
            in_file.contains(&o.service) && !desired.iter().any(|d| d.service == o.service);
        if in_file_but_unselected {
            continue;
        }
        actions.push(Action::Remove {
            service: o.service.clone(),
            id: o.id.clone(),
            name: o.name.clone(),
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(s: &str, replicas: u32, hash: &str, image: &str) -> Desired {
        Desired {
            service: s.into(),
            replicas,
            config_hash: hash.into(),
            image_id: image.into(),
            job: false,
        }
    }

    fn have(id: &str, s: &str, n: u32, hash: &str, image: &str, running: bool) -> Observed {
        Observed {
            id: id.into(),
            name: format!("p-{s}-{n}"),
            service: s.into(),
            number: n,
            config_hash: hash.into(),
            image_id: image.into(),
            running,
            exited_ok: false,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_engine_creates_every_replica() {
        let a = plan(
            &[want("db", 1, "h", "i"), want("web", 2, "h", "i")],
            &names(&["db", "web"]),
            &[],
        );
        assert_eq!(
            a,
            vec![
                Action::Create {
                    service: "db".into(),
                    number: 1
                },
                Action::Create {
                    service: "web".into(),
                    number: 1
                },
                Action::Create {
                    service: "web".into(),
                    number: 2
                },
            ]
        );
    }

    #[test]
    fn unchanged_running_is_kept_and_stopped_is_started() {
        let obs = [
            have("a", "db", 1, "h", "i", true),
            have("b", "job", 1, "h", "i", false),
        ];
        let a = plan(
            &[want("db", 1, "h", "i"), want("job", 1, "h", "i")],
            &names(&["db", "job"]),
            &obs,
        );
        assert_eq!(
            a,
            vec![
                Action::Keep {
                    service: "db".into(),
                    number: 1,
                    id: "a".into()
                },
                Action::Start {
                    service: "job".into(),
                    number: 1,
                    id: "b".into()
                },
            ]
        );
    }

    #[test]
    fn hash_or_image_change_recreates_only_that_service() {
        let obs = [
            have("a", "db", 1, "h", "i", true),
            have("b", "web", 1, "old", "i", true),
            have("c", "api", 1, "h", "old", true),
        ];
        let a = plan(
            &[
                want("db", 1, "h", "i"),
                want("web", 1, "h", "i"),
                want("api", 1, "h", "i"),
            ],
            &names(&["db", "web", "api"]),
            &obs,
        );
        assert_eq!(
            a[0],
            Action::Keep {
                service: "db".into(),
                number: 1,
                id: "a".into()
            }
        );
        assert!(
            matches!(&a[1], Action::Recreate { service, old_id, reason, .. } if service == "web" && old_id == "b" && reason.contains("configuration"))
        );
        assert!(
            matches!(&a[2], Action::Recreate { service, old_id, reason, .. } if service == "api" && old_id == "c" && reason.contains("image"))
        );
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn removed_services_and_extra_replicas_go_unselected_stay() {
        let obs = [
            have("a", "web", 1, "h", "i", true),
            have("b", "web", 2, "h", "i", true),
            have("c", "gone", 1, "h", "i", true),
            have("d", "grafana", 1, "h", "i", true),
        ];
        // grafana is in the file but left out (--without observability): untouched.
        let a = plan(
            &[want("web", 1, "h", "i")],
            &names(&["web", "grafana"]),
            &obs,
        );
        assert_eq!(
            a,
            vec![
                Action::Keep {
                    service: "web".into(),
                    number: 1,
                    id: "a".into()
                },
                Action::Remove {
                    service: "web".into(),
                    id: "b".into(),
                    name: "p-web-2".into()
                },
                Action::Remove {
                    service: "gone".into(),
                    id: "c".into(),
                    name: "p-gone-1".into()
                },
            ]
        );
    }

    #[test]
    fn a_job_that_succeeded_is_kept_one_that_failed_or_never_ran_runs_again() {
        let job = |s: &str| Desired {
            job: true,
            ..want(s, 1, "h", "i")
        };
        let ok = Observed {
            exited_ok: true,
            ..have("a", "ok", 1, "h", "i", false)
        };
        let failed = have("b", "failed", 1, "h", "i", false);
        let changed = Observed {
            exited_ok: true,
            ..have("c", "changed", 1, "old", "i", false)
        };
        let a = plan(
            &[job("ok"), job("failed"), job("changed")],
            &names(&["ok", "failed", "changed"]),
            &[ok, failed, changed],
        );
        assert_eq!(
            a[0],
            Action::Keep {
                service: "ok".into(),
                number: 1,
                id: "a".into()
            }
        );
        assert_eq!(
            a[1],
            Action::Start {
                service: "failed".into(),
                number: 1,
                id: "b".into()
            }
        );
        assert!(matches!(&a[2], Action::Recreate { service, .. } if service == "changed"));
        // A long-running service that exited 0 is started again.
        let svc = Observed {
            exited_ok: true,
            ..have("d", "web", 1, "h", "i", false)
        };
        let a = plan(&[want("web", 1, "h", "i")], &names(&["web"]), &[svc]);
        assert_eq!(
            a[0],
            Action::Start {
                service: "web".into(),
                number: 1,
                id: "d".into()
            }
        );
    }

    #[test]
    fn duplicate_slot_keeps_the_matching_one() {
        let obs = [
            have("old", "db", 1, "x", "i", false),
            have("new", "db", 1, "h", "i", true),
        ];
        let a = plan(&[want("db", 1, "h", "i")], &names(&["db"]), &obs);
        assert_eq!(
            a,
            vec![
                Action::Keep {
                    service: "db".into(),
                    number: 1,
                    id: "new".into()
                },
                Action::Remove {
                    service: "db".into(),
                    id: "old".into(),
                    name: "p-db-1".into()
                },
            ]
        );
    }
}
