//! Images: build ours (classic builder, host networking, content-hash label), pull the rest, and
//! say exactly how to provide an image that can be neither.

use std::collections::HashMap;

use anyhow::Result;
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};

use super::docker::Docker;
use crate::config::Stack;
use crate::error::UserError;
use crate::images::{self, BuildSpec, HASH_LABEL};

/// Whether `spec` is already built (its image carries the same content hash).
pub async fn is_current(docker: &Docker, spec: &BuildSpec) -> Result<bool> {
    Ok(docker
        .inspect_image(&spec.tag)
        .await?
        .and_then(|i| i.config)
        .and_then(|c| c.labels)
        .is_some_and(|l| l.get(HASH_LABEL) == Some(&spec.content_hash)))
}

/// Builds one image, streaming its output with `prefix`.
pub async fn build(docker: &Docker, spec: &BuildSpec) -> Result<()> {
    let opts = BuildImageOptions {
        t: Some(spec.tag.clone()),
        networkmode: Some("host".into()),
        rm: true,
        forcerm: true,
        buildargs: Some(spec.build_args.iter().cloned().collect()),
        labels: Some(HashMap::from([(
            HASH_LABEL.to_string(),
            spec.content_hash.clone(),
        )])),
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    };
    let name = spec.name;
    docker
        .build_image(&spec.tag, opts, spec.context_tar.clone(), |line| {
            // The build log is progress: stderr, so `up` or `token create` keep stdout clean.
            eprintln!("{name} | {line}")
        })
        .await
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
                Some(name) if images::available(name) => {
                    on_status(r, "building");
                    let spec = images::spec(stack, name, images::DEFAULT_BASE)?;
                    build(docker, &spec).await?;
                }
                _ => {
                    on_status(r, "pulling");
                    if let Err(e) = docker.pull_image(r).await {
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
