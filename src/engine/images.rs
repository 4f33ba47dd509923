//! Images: build ours (classic builder, host networking, content-hash label), pull the rest, and
//! say exactly how to provide an image that can be neither.
//!
//! One of ours whose `[images]` reference names a registry (`127.0.0.1:5000/ns/postgres:17`, as
//! `stackctl publish` writes) is pulled when missing, and built only if that pull fails and the
//! host can build it; once present it is used as it is (the registry's image is the truth, so a
//! different local build does not silently replace it). The default `stackctl/...` tags keep
//! the build-when-missing-or-stale behaviour.

use std::collections::HashMap;

use anyhow::Result;
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};

use super::docker::Docker;
use crate::config::Stack;
use crate::error::UserError;
use crate::images::{self, BuildSpec, HASH_LABEL, OCI_VERSION};
use crate::registry::{credentials, target};

/// Whether `spec` is already built (its image carries the same content hash, and the OCI labels:
/// an image built before stackctl set them is built once more).
pub async fn is_current(docker: &Docker, spec: &BuildSpec) -> Result<bool> {
    Ok(docker
        .inspect_image(&spec.tag)
        .await?
        .and_then(|i| i.config)
        .and_then(|c| c.labels)
        .is_some_and(|l| {
            l.get(HASH_LABEL) == Some(&spec.content_hash) && l.contains_key(OCI_VERSION)
        }))
}

/// Builds one image, streaming its output with `prefix`.
pub async fn build(docker: &Docker, spec: &BuildSpec) -> Result<()> {
    let opts = BuildImageOptions {
        t: Some(spec.tag.clone()),
        networkmode: Some("host".into()),
        rm: true,
        forcerm: true,
        buildargs: Some(spec.build_args.iter().cloned().collect()),
        labels: Some(
            spec.labels
                .iter()
                .cloned()
                .chain([(HASH_LABEL.to_string(), spec.content_hash.clone())])
                .collect(),
        ),
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    };
    let name = spec.name;
    docker
        .build_image(&spec.tag, opts, spec.context_tar.clone(), |line| {
            // The build log is progress: stderr, so `up` or `token create` keep stdout clean.
            eprintln!("{name} | {line}")
        })
        .await?;
    Ok(())
}

/// `stackctl build [NAMES]`: builds our images whose content changed.
pub async fn build_all(docker: &Docker, stack: &Stack, names: &[String], base: &str) -> Result<()> {
    let wanted: Vec<&str> = if names.is_empty() {
        images::NAMES
            .iter()
            .copied()
            .filter(|n| images::available(n))
            .collect()
    } else {
        names.iter().map(String::as_str).collect()
    };
    for name in wanted {
        let spec = images::spec(stack, name, base)?;
        if is_current(docker, &spec).await? {
            println!("{name}: {} is up to date", spec.tag);
            continue;
        }
        println!("{name}: building {}", spec.tag);
        build(docker, &spec).await?;
        println!("{name}: built {}", spec.tag);
    }
    Ok(())
}

/// Makes every image present (building ours when missing, pulling others) and returns the
/// image id of each reference.
pub async fn ensure(
    docker: &Docker,
    stack: &Stack,
    refs: &[String],
    on_status: &(dyn Fn(&str, &str) + Sync),
) -> Result<HashMap<String, String>> {
    let mut ids = HashMap::new();
    for r in refs {
        if ids.contains_key(r) {
            continue;
        }
        let ours = images::name_for_tag(stack, r);
        if let Some(i) = docker.inspect_image(r).await? {
            // One of ours that stackctl built from other inputs (say, an older stackctl whose
            // embedded migrations differ) is rebuilt; an image without our label was provided
            // by the user (`docker load`, a registry) and is used as it is.
            let built_hash = i
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(HASH_LABEL))
                .cloned();
            let stale = match (ours, built_hash) {
                // A registry reference is used as it is (see the module comment).
                _ if target::registry_of(r).is_some() => None,
                (Some(name), Some(hash)) if images::available(name) => {
                    let spec = images::spec(stack, name, images::DEFAULT_BASE)?;
                    (spec.content_hash != hash).then_some(spec)
                }
                _ => None,
            };
            match stale {
                None => {
                    ids.insert(r.clone(), i.id.unwrap_or_default());
                    continue;
                }
                Some(spec) => {
                    on_status(r, "rebuilding (inputs changed)");
                    build(docker, &spec).await?;
                }
            }
        } else {
            match ours {
                Some(name) if target::registry_of(r).is_some() => {
                    on_status(r, "pulling");
                    if let Err(e) = pull(docker, r).await {
                        if !images::available(name) {
                            return Err(e.context(
                                UserError::new(format!(
                                    "image {r} is not on this machine and cannot be pulled"
                                ))
                                .hint(format!(
                                    "check that the registry answers and that `docker login` holds its credentials (or run `stackctl publish` again), or build it here: put the {name} binary beside stackctl and run `stackctl build {name}`"
                                )),
                            ));
                        }
                        eprintln!("{r}: pull failed ({e:#}); building it here instead");
                        on_status(r, "building (pull failed)");
                        let spec = images::spec(stack, name, images::DEFAULT_BASE)?;
                        build(docker, &spec).await?;
                    }
                }
                Some(name) if images::available(name) => {
                    on_status(r, "building");
                    let spec = images::spec(stack, name, images::DEFAULT_BASE)?;
                    build(docker, &spec).await?;
                }
                _ => {
                    on_status(r, "pulling");
                    if let Err(e) = pull(docker, r).await {
                        let how = match ours {
                        Some(name) => format!(
                            "build it with `stackctl build {name}` (the binaries must sit beside stackctl), load it with `docker load`, or set images.{name} in stack.toml to an image you have"
                        ),
                        None => "load it with `docker load -i FILE.tar`, or set its tag under [images] in stack.toml to an image you have".to_string(),
                    };
                        return Err(e.context(
                            UserError::new(format!(
                                "image {r} is not on this machine and cannot be pulled"
                            ))
                            .hint(how),
                        ));
                    }
                }
            }
        }
        let id = docker
            .inspect_image(r)
            .await?
            .and_then(|i| i.id)
            .unwrap_or_default();
        ids.insert(r.clone(), id);
    }
    Ok(ids)
}

/// Pulls `reference` with the credentials the user's Docker config holds for its registry (a
/// config or helper that cannot be read means an anonymous pull; the pull's own error says more).
async fn pull(docker: &Docker, reference: &str) -> Result<()> {
    let server = target::config_key_of(reference);
    let creds = credentials::from_docker_config(&server)
        .await
        .ok()
        .flatten()
        .map(|c| c.to_docker(&server));
    docker.pull_image(reference, creds).await?;
    Ok(())
}

/// For `stackctl publish`: makes our image `name` present under its `[images]` tag and returns
/// its id (the config digest a registry will hold). Like `build`, it builds an image whose
/// inputs changed; like `ensure`, it uses an image without our label (`docker load`, another
/// registry) as it is, and pulls a missing registry reference. One it can neither find nor build
/// is an error that says how to provide it.
pub async fn prepare_for_publish(
    docker: &Docker,
    stack: &Stack,
    name: &str,
    on_status: &(dyn Fn(&str) + Sync),
) -> Result<String> {
    let tag = images::tag_of(stack, name);
    let present = docker.inspect_image(&tag).await?;
    let labels = present
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    if images::available(name) {
        let spec = images::spec(stack, name, images::DEFAULT_BASE)?;
        let usable = present.is_some()
            && match labels.get(HASH_LABEL) {
                None => true,
                Some(h) => *h == spec.content_hash && labels.contains_key(OCI_VERSION),
            };
        if !usable {
            on_status(&format!("building {tag}"));
            build(docker, &spec).await?;
        }
    } else if present.is_none() {
        let how = format!(
            "build the binary with `cargo build --release -p {name}` (it must sit beside stackctl) and run `stackctl build {name}`, or publish only the others: `stackctl publish --registry ... postgres pgbouncer stackctl`"
        );
        if target::registry_of(&tag).is_some() {
            on_status(&format!("pulling {tag}"));
            pull(docker, &tag).await.map_err(|e| {
                e.context(
                    UserError::new(format!(
                        "{name}: image {tag} is not on this machine, cannot be pulled, and stackctl cannot build it here"
                    ))
                    .hint(how.clone()),
                )
            })?;
        } else {
            return Err(UserError::new(format!(
                "{name}: image {tag} is not on this machine and stackctl cannot build it here (no {name} binary beside stackctl)"
            ))
            .hint(how)
            .into());
        }
    }
    docker
        .inspect_image(&tag)
        .await?
        .and_then(|i| i.id)
        .ok_or_else(|| anyhow::anyhow!("image {tag} has no id after it was made"))
}
