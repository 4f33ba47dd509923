//! Build script: records the source revision stackctl is built from, for the OCI labels of the
//! images it builds (`org.opencontainers.image.revision` and `.source`; see src/images.rs).
//!
//! `STACKCTL_REVISION` is the commit of `HEAD` (empty outside a git checkout); `STACKCTL_SOURCE`
//! is `STACKCTL_SOURCE_URL` from the build environment, else the package's `repository`, else the
//! checkout's `origin` remote (empty when none is known). The script runs again when `HEAD` moves.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `https://user:token@host/x` -> `https://host/x`: a remote's credentials never reach a label.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=STACKCTL_SOURCE_URL");
    // `logs/HEAD` changes on every commit, checkout and reset; `HEAD` when the branch changes.
    for p in ["HEAD", "logs/HEAD"] {
        // Only existing files: cargo re-runs the script every build for a missing one.
        if let Some(path) =
            git(&["rev-parse", "--git-path", p]).filter(|path| std::path::Path::new(path).exists())
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let revision = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    let source = std::env::var("STACKCTL_SOURCE_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::env::var("CARGO_PKG_REPOSITORY")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .or_else(|| git(&["remote", "get-url", "origin"]).map(|u| without_userinfo(&u)))
        .unwrap_or_default();
    println!("cargo:rustc-env=STACKCTL_REVISION={revision}");
    println!("cargo:rustc-env=STACKCTL_SOURCE={source}");
}
