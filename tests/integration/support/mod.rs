//! Helpers shared by the scenarios: the fluent `stackctl` runner (`run`), reading a stack
//! directory's files (`files`), the test PostgreSQL (`postgres`), and Docker (the commands and
//! ports come from the `testkit` crate the other test binaries use too).

#![allow(dead_code)]

mod files;
mod postgres;
mod run;
mod services;

use std::process::Command;

pub use files::{assert_unchanged, mode, snapshot, yget, ystr};
pub use postgres::{Db, Postgres, postgres_image};
pub use run::{Done, Run, Stackctl, bin, interrupt_when, stackctl_in};
pub use services::{build_service_binaries, eventually, http_answer, token_of};
pub use testkit::{docker, free_port, image_exists, published_port, require_docker};

/// `docker compose` v2 (installed by scripts/compose-v2.sh), or panics with how to get it.
pub fn compose_v2() -> Command {
    let ok = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(" 2."))
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs Docker Compose v2 as `docker compose`: run scripts/compose-v2.sh"
    );
    let mut c = Command::new("docker");
    c.arg("compose");
    c
}
