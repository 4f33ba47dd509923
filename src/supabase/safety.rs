//! Whether the target may be written, decided before anything is: imported schemas must be empty
//! (and auth.users absent), unless `--clean --yes`, or unless they were filled by an unfinished run
//! of this same import into this same target and were empty before it. Pure, unit-tested.

use crate::error::UserError;

/// What the target holds where the import will write.
pub struct Observed<'a> {
    /// Imported schemas that hold objects, with how many.
    pub occupied: &'a [(String, i64)],
    pub users_exist: bool,
    /// Whether the import brings auth.users.
    pub brings_users: bool,
    pub imported: &'a [String],
}

/// An unfinished run's claim on this target: what was empty before it started.
pub struct Claim<'a> {
    pub fresh_schemas: &'a [String],
    pub fresh_auth_users: bool,
}

#[derive(Debug, PartialEq)]
pub struct Decision {
    /// Schemas to drop first, and whether to drop auth.users.
    pub clean: Vec<String>,
    pub drop_users: bool,
    /// Whether the clean-up resumes an unfinished run (rather than obeying --clean).
    pub resumed: bool,
    /// What is empty before this run writes (recorded for a later resume).
    pub fresh_schemas: Vec<String>,
    pub fresh_auth_users: bool,
}

pub fn decide(
    o: &Observed,
    claim: Option<&Claim>,
    clean: bool,
    target: &str,
) -> Result<Decision, UserError> {
    let users_in_way = o.users_exist && o.brings_users;
    let names: Vec<String> = o.occupied.iter().map(|(s, _)| s.clone()).collect();
    if names.is_empty() && !users_in_way {
        return Ok(Decision {
            clean: Vec::new(),
            drop_users: false,
            resumed: false,
            fresh_schemas: o.imported.to_vec(),
            fresh_auth_users: !o.users_exist,
        });
    }
    let ours = claim.filter(|c| {
        names.iter().all(|s| c.fresh_schemas.contains(s)) && (!users_in_way || c.fresh_auth_users)
    });
    if let Some(c) = ours {
        return Ok(Decision {
            clean: names,
            drop_users: users_in_way,
            resumed: true,
            fresh_schemas: c.fresh_schemas.to_vec(),
            fresh_auth_users: c.fresh_auth_users,
        });
    }
    if clean {
        return Ok(Decision {
            clean: names,
            drop_users: users_in_way,
            resumed: false,
            fresh_schemas: o.imported.to_vec(),
            fresh_auth_users: true,
        });
    }
    let mut what: Vec<String> = o
        .occupied
        .iter()
        .map(|(s, n)| format!("schema {s} holds {n} objects"))
        .collect();
    if users_in_way {
        what.push("auth.users exists".into());
    }
    Err(UserError::new(format!("the target {target} is not empty: {}", what.join("; "))).hint(
        "import into an empty database, or add `--clean --yes` to drop those schemas (and auth.users) on the target first",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn an_empty_target_is_written_and_recorded_as_fresh() {
        let imported = v(&["app", "public"]);
        let o = Observed {
            occupied: &[],
            users_exist: false,
            brings_users: true,
            imported: &imported,
        };
        let d = decide(&o, None, false, "t").unwrap();
        assert_eq!(
            (d.clean.len(), d.fresh_schemas, d.fresh_auth_users),
            (0, imported.clone(), true)
        );
    }

    #[test]
    fn an_occupied_target_is_refused_unless_clean_or_our_own_unfinished_run() {
        let imported = v(&["app", "public"]);
        let occupied = vec![("app".to_string(), 9)];
        let o = Observed {
            occupied: &occupied,
            users_exist: true,
            brings_users: true,
            imported: &imported,
        };
        let e = decide(&o, None, false, "t").unwrap_err();
        assert!(
            e.message
                .contains("schema app holds 9 objects; auth.users exists"),
            "{}",
            e.message
        );

        let d = decide(&o, None, true, "t").unwrap();
        assert_eq!(
            (d.clean, d.drop_users, d.resumed),
            (v(&["app"]), true, false)
        );

        let fresh = v(&["app", "public"]);
        let claim = Claim {
            fresh_schemas: &fresh,
            fresh_auth_users: true,
        };
        let d = decide(&o, Some(&claim), false, "t").unwrap();
        assert_eq!(
            (d.clean, d.drop_users, d.resumed),
            (v(&["app"]), true, true)
        );

        // A schema that held objects before the unfinished run is never emptied by a resume.
        let fresh = v(&["public"]);
        let claim = Claim {
            fresh_schemas: &fresh,
            fresh_auth_users: true,
        };
        assert!(decide(&o, Some(&claim), false, "t").is_err());
        let claim = Claim {
            fresh_schemas: &imported,
            fresh_auth_users: false,
        };
        assert!(decide(&o, Some(&claim), false, "t").is_err());
    }
}
