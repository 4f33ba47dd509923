//! The images stackctl builds itself: their Dockerfiles, build contexts and content hashes.
//!
//! Each build context is a deterministic tar (fixed mtimes, owners and order), so its SHA-256 plus
//! the build arguments is a content hash: an image whose `dev.stackctl.build-hash` label equals it
//! is up to date and is not rebuilt. Dockerfiles take their base image as the `BASE` build argument.
//! The Rust binaries are built by cargo on the host: the `stackctl` image copies the running
//! executable; `postgate` and `runner` copy the binaries that sit beside it.
//!
//! Every image also carries the OCI labels (`org.opencontainers.image.source`, `.version`,
//! `.revision`, `.created`), set as build labels. They are left out of the content hash on
//! purpose: `.created` is the time of the build, so hashing it would make every build "changed";
//! an image whose content is unchanged keeps the labels of the build that made it (its revision
//! is the one its content was built from).

use std::path::PathBuf;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::Stack;
use crate::error::UserError;

/// The label that records an image's content hash.
pub const HASH_LABEL: &str = "dev.stackctl.build-hash";

/// OCI label: the stack's version (stackctl's package version).
pub const OCI_VERSION: &str = "org.opencontainers.image.version";
/// OCI label: the source revision (git commit) stackctl was built from.
pub const OCI_REVISION: &str = "org.opencontainers.image.revision";
/// OCI label: where the source lives (known when stackctl was built; see build.rs).
pub const OCI_SOURCE: &str = "org.opencontainers.image.source";
/// OCI label: when the image was built (RFC 3339, UTC).
pub const OCI_CREATED: &str = "org.opencontainers.image.created";

/// The OCI labels of an image built now. `.revision` and `.source` are left out when stackctl
/// was built outside a git checkout with no known source URL (an empty label would say nothing).
pub fn oci_labels() -> Vec<(String, String)> {
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    [
        (OCI_VERSION, env!("CARGO_PKG_VERSION")),
        (OCI_REVISION, env!("STACKCTL_REVISION")),
        (OCI_SOURCE, env!("STACKCTL_SOURCE")),
        (OCI_CREATED, created.as_str()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The default base image for every Dockerfile.
pub const DEFAULT_BASE: &str = "debian:trixie-slim";

/// Everything needed to build one image.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Our name for it: postgres, pgbouncer, stackctl, postgate, runner, prometheus,
    /// postgres-exporter, pgbouncer-exporter.
    pub name: &'static str,
    /// The tag it is built as (from stack.toml `[images]`).
    pub tag: String,
    /// The build context as an uncompressed tar holding `Dockerfile` and its files.
    pub context_tar: Vec<u8>,
    pub build_args: Vec<(String, String)>,
    /// The OCI labels (not part of `content_hash`).
    pub labels: Vec<(String, String)>,
    pub content_hash: String,
}

/// Names of the images we can build, in build order.
pub const NAMES: &[&str] = &[
    "postgres",
    "pgbouncer",
    "stackctl",
    "postgate",
    "runner",
    "prometheus",
    "postgres-exporter",
    "pgbouncer-exporter",
];

enum Source {
    Embedded(&'static [u8]),
    /// A binary cargo built on the host, found beside the running stackctl.
    HostBinary(&'static str),
    /// The running stackctl executable.
    SelfExe,
}

struct File {
    path: &'static str,
    mode: u32,
    source: Source,
}

fn files_of(name: &str) -> Vec<File> {
    use Source::*;
    match name {
        "postgres" => vec![
            File {
                path: "Dockerfile",
                mode: 0o644,
                source: Embedded(include_bytes!("../stack/postgres/Dockerfile")),
            },
            File {
                path: "docker-entrypoint.sh",
                mode: 0o755,
                source: Embedded(include_bytes!("../stack/postgres/docker-entrypoint.sh")),
            },
        ],
        "pgbouncer" => vec![
            File {
                path: "Dockerfile",
                mode: 0o644,
                source: Embedded(include_bytes!("../stack/pgbouncer/Dockerfile")),
            },
            File {
                path: "docker-entrypoint.sh",
                mode: 0o755,
                source: Embedded(include_bytes!("../stack/pgbouncer/docker-entrypoint.sh")),
            },
        ],
        "stackctl" => vec![
            File {
                path: "Dockerfile",
                mode: 0o644,
                source: Embedded(include_bytes!("../stack/stackctl/Dockerfile")),
            },
            File {
                path: "stackctl",
                mode: 0o755,
                source: SelfExe,
            },
        ],
        "postgate" => vec![
            File {
                path: "Dockerfile",
                mode: 0o644,
                source: Embedded(SERVICE_DOCKERFILE_POSTGATE.as_bytes()),
            },
            File {
                path: "postgate",
                mode: 0o755,
                source: HostBinary("postgate"),
            },
        ],
        "runner" => vec![
            File {
                path: "Dockerfile",
                mode: 0o644,
                source: Embedded(include_bytes!("../stack/runner/Dockerfile")),
            },
            File {
                path: "runner",
                mode: 0o755,
                source: HostBinary("runner"),
            },
        ],
        "prometheus" => vec![File {
            path: "Dockerfile",
            mode: 0o644,
            source: Embedded(include_bytes!("../stack/prometheus/Dockerfile")),
        }],
        "postgres-exporter" => vec![File {
            path: "Dockerfile",
            mode: 0o644,
            source: Embedded(include_bytes!("../stack/postgres-exporter/Dockerfile")),
        }],
        "pgbouncer-exporter" => vec![File {
            path: "Dockerfile",
            mode: 0o644,
            source: Embedded(include_bytes!("../stack/pgbouncer-exporter/Dockerfile")),
        }],
        _ => Vec::new(),
    }
}

const SERVICE_DOCKERFILE_POSTGATE: &str = "ARG BASE=debian:trixie-slim\nFROM ${BASE}\nRUN useradd --system --uid 10001 --shell /usr/sbin/nologin postgate\nCOPY postgate /usr/local/bin/postgate\nUSER postgate\nEXPOSE 8080\nENTRYPOINT [\"/usr/local/bin/postgate\"]\nCMD [\"serve\"]\n";

/// The `stack.toml` `[images]` key of our image `name` (`postgres-exporter` -> `postgres_exporter`).
pub fn stack_toml_key(name: &str) -> String {
    name.replace('-', "_")
}

/// The `[images]` reference of our image `name`.
pub fn tag_of(stack: &Stack, name: &str) -> String {
    let i = &stack.file.images;
    match name {
        "postgres" => i.postgres.clone(),
        "pgbouncer" => i.pgbouncer.clone(),
        "stackctl" => i.stackctl.clone(),
        "postgate" => i.postgate.clone(),
        "runner" => i.runner.clone(),
        "prometheus" => i.prometheus.clone(),
        "postgres-exporter" => i.postgres_exporter.clone(),
        "pgbouncer-exporter" => i.pgbouncer_exporter.clone(),
        _ => String::new(),
    }
}

fn read_source(source: &Source) -> Result<Vec<u8>> {
    match source {
        Source::Embedded(b) => Ok(b.to_vec()),
        Source::SelfExe => {
            let exe = std::env::current_exe().context("finding the running stackctl executable")?;
            std::fs::read(&exe).with_context(|| format!("reading {}", exe.display()))
        }
        Source::HostBinary(bin) => {
            let path = beside_self(bin)?;
            std::fs::read(&path).map_err(|e| {
                UserError::new(format!(
                    "cannot read the {bin} binary at {}: {e}",
                    path.display()
                ))
                .hint(format!(
                    "build it first: `cargo build --release -p {bin}` (it must sit beside stackctl)"
                ))
                .into()
            })
        }
    }
}

fn beside_self(bin: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the running stackctl executable")?;
    Ok(exe.with_file_name(bin))
}

/// Whether the host has what `name`'s build needs (binaries beside stackctl, for our services).
pub fn available(name: &str) -> bool {
    files_of(name).iter().all(|f| match f.source {
        Source::HostBinary(bin) => beside_self(bin).map(|p| p.is_file()).unwrap_or(false),
        _ => true,
    })
}

/// The build spec for one image.
pub fn spec(stack: &Stack, name: &str, base: &str) -> Result<BuildSpec> {
    let files = files_of(name);
    let Some(name) = NAMES
        .iter()
        .copied()
        .find(|n| *n == name)
        .filter(|_| !files.is_empty())
    else {
        return Err(
            UserError::new(format!("stackctl cannot build an image named `{name}`"))
                .hint(format!("buildable images: {}", NAMES.join(", ")))
                .into(),
        );
    };
    let mut builder = tar::Builder::new(Vec::new());
    for f in &files {
        let data = read_source(&f.source)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(f.mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut h, f.path, data.as_slice())
            .with_context(|| format!("packing {}", f.path))?;
    }
    let context_tar = builder
        .into_inner()
        .context("finishing the build context")?;
    let build_args = vec![("BASE".to_string(), base.to_string())];
    let mut hasher = Sha256::new();
    hasher.update(&context_tar);
    for (k, v) in &build_args {
        hasher.update(format!("\0{k}={v}").as_bytes());
    }
    let content_hash = hex::encode(hasher.finalize());
    Ok(BuildSpec {
        name,
        tag: tag_of(stack, name),
        context_tar,
        build_args,
        labels: oci_labels(),
        content_hash,
    })
}

/// Which of our images is built as `image` (a tag from the Compose file), if any.
pub fn name_for_tag(stack: &Stack, image: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| tag_of(stack, n) == image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StackFile;

    fn stack() -> Stack {
        Stack::from_file(std::path::Path::new("/tmp"), StackFile::default()).unwrap()
    }

    #[test]
    fn contexts_are_deterministic_and_hash_the_base() {
        let s = stack();
        let a = spec(&s, "postgres", DEFAULT_BASE).unwrap();
        let b = spec(&s, "postgres", DEFAULT_BASE).unwrap();
        assert_eq!(a.content_hash, b.content_hash);
        assert_eq!(a.context_tar, b.context_tar);
        let c = spec(&s, "postgres", "debian:bookworm-slim").unwrap();
        assert_ne!(a.content_hash, c.content_hash);
        let mut ar = tar::Archive::new(a.context_tar.as_slice());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["Dockerfile", "docker-entrypoint.sh"]);
    }

    #[test]
    fn oci_labels_are_set_and_not_hashed() {
        let s = stack();
        let a = spec(&s, "pgbouncer", DEFAULT_BASE).unwrap();
        let keys: Vec<&str> = a.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&OCI_VERSION) && keys.contains(&OCI_CREATED));
        let created = &a.labels.iter().find(|(k, _)| k == OCI_CREATED).unwrap().1;
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{created}"
        );
        // A build a second later has another `.created` but the same content hash.
        let b = spec(&s, "pgbouncer", DEFAULT_BASE).unwrap();
        assert_eq!(a.content_hash, b.content_hash);
    }

    #[test]
    fn tags_come_from_stack_toml() {
        let s = stack();
        assert_eq!(name_for_tag(&s, "stackctl/postgres:17"), Some("postgres"));
        assert_eq!(name_for_tag(&s, "grafana/loki:3.7.0"), None);
        assert!(spec(&s, "loki", DEFAULT_BASE).is_err());
    }
}
