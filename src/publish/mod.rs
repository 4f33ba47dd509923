//! `stackctl publish`: puts our images (postgres, pgbouncer, stackctl, postgate, runner) in a
//! registry a Dokploy host can pull from, and points `stack.toml` `[images]` at them, so the
//! rendered Compose file (both targets) refers to the published images.
//!
//! Order, so that bad input changes nothing: the `--registry` value and `--tag` are checked; the
//! credentials are found (`credentials`); the registry must answer and accept them (`registry`);
//! each image is made present (built when its inputs changed: `engine::prepare_for_publish`);
//! every target tag the registry already holds is compared with the local image by config
//! digest, and a different one is refused unless `--force`. Only then are the images tagged and
//! pushed through the Docker Engine API and `stack.toml` rewritten (`stack_toml`). The pushed
//! references and digests go to stdout (or `--json`); progress goes to stderr.

mod stack_toml;

use anyhow::Result;
use serde::Serialize;

use crate::config::Stack;
use crate::engine::{self, Docker};
use crate::error::UserError;
use crate::images;
use crate::registry::client::{self, Remote};
use crate::registry::credentials;
use crate::registry::target::{self, Registry};

/// One image to publish.
struct Item {
    name: &'static str,
    /// Its `[images]` reference now (the local source).
    local: String,
    /// `HOST/NAMESPACE/name`.
    repository: String,
    tag: String,
}

impl Item {
    fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// What was pushed, per image.
#[derive(Debug, Serialize)]
pub struct Published {
    pub name: String,
    pub reference: String,
    /// The manifest digest the registry stored (`sha256:...`).
    pub digest: Option<String>,
    /// The image id (the config digest).
    pub image_id: String,
    /// Layers uploaded by this push.
    pub layers_pushed: usize,
    /// Layers the registry already had.
    pub layers_existing: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub registry: String,
    pub images: Vec<Published>,
    /// Layers uploaded in all (0 when nothing changed since the last publish).
    pub layers_pushed: usize,
    pub stack_toml_updated: bool,
}

/// The images to publish: the named ones (checked), or all of ours.
fn select(names: &[String]) -> Result<Vec<&'static str>> {
    if names.is_empty() {
        return Ok(images::NAMES.to_vec());
    }
    let mut out = Vec::new();
    for n in names {
        let Some(known) = images::NAMES.iter().copied().find(|k| k == n) else {
            return Err(
                UserError::new(format!("stackctl does not publish an image named `{n}`"))
                    .hint(format!("our images: {}", images::NAMES.join(", ")))
                    .into(),
            );
        };
        if !out.contains(&known) {
            out.push(known);
        }
    }
    Ok(out)
}

/// A publish's options.
pub struct Options {
    /// Only these images (empty: all of ours).
    pub images: Vec<String>,
    /// `HOST[:PORT]/NAMESPACE`.
    pub registry: String,
    /// Tag of every pushed image (default: each image's own tag in stack.toml `[images]`).
    pub tag: Option<String>,
    /// Replace a tag the registry already holds with different content.
    pub force: bool,
    pub username: Option<String>,
    /// Read the password from stdin (else from `STACKCTL_REGISTRY_PASSWORD`).
    pub password_stdin: bool,
    pub json: bool,
}

/// Publishes, then prints the pushed references (or `--json`) on stdout.
pub async fn run(stack: &Stack, docker: &Docker, a: Options) -> Result<()> {
    let reg = Registry::parse(&a.registry)?;
    if let Some(t) = &a.tag {
        target::check_tag(t)?;
    }
    let items: Vec<Item> = select(&a.images)?
        .into_iter()
        .map(|name| {
            let local = images::tag_of(stack, name);
            let tag = a
                .tag
                .clone()
                .or_else(|| target::tag_of(&local).map(str::to_string))
                .unwrap_or_else(|| "latest".into());
            Item {
                name,
                repository: reg.repository(name),
                local,
                tag,
            }
        })
        .collect();
    let explicit = credentials::explicit(a.username.as_deref(), a.password_stdin)?;
    let report = publish(stack, docker, &reg, &items, explicit, a.force).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for p in &report.images {
        println!(
            "{} {} (layers: {} pushed, {} already in the registry)",
            p.reference,
            p.digest.as_deref().unwrap_or("(digest not reported)"),
            p.layers_pushed,
            p.layers_existing
        );
    }
    let names: Vec<&str> = report.images.iter().map(|p| p.name.as_str()).collect();
    if report.stack_toml_updated {
        println!(
            "stack.toml [images] {} now refer to {}/{} (`stackctl render` and `up` use them)",
            names.join(", "),
            reg.host,
            reg.namespace
        );
    } else {
        println!("stack.toml [images] already referred to these images");
    }
    Ok(())
}

async fn publish(
    stack: &Stack,
    docker: &Docker,
    reg: &Registry,
    items: &[Item],
    explicit: Option<credentials::Credentials>,
    force: bool,
) -> Result<Report> {
    let server = reg.config_key();
    let creds = credentials::resolve(explicit, &server).await?;
    match &creds {
        Some(c) if !c.username.is_empty() => eprintln!(
            "registry {}: as {} (credentials from {})",
            reg.host, c.username, c.source
        ),
        Some(c) => eprintln!(
            "registry {}: with an identity token from {}",
            reg.host, c.source
        ),
        None => eprintln!("registry {}: no credentials (anonymous)", reg.host),
    }
    let client = client::Client::new(reg.clone(), creds.clone());
    client.check_access().await?;

    let mut ids = Vec::new();
    for it in items {
        let name = it.name;
        let id =
            engine::prepare_for_publish(docker, stack, name, &|s| eprintln!("{name}: {s}")).await?;
        ids.push(id);
    }

    let mut conflicts = Vec::new();
    for (it, id) in items.iter().zip(&ids) {
        match client.remote(it.name, &it.tag).await? {
            Remote::Absent => {}
            Remote::Image(d) if d == *id => {
                eprintln!("{}: {} already holds this image", it.name, it.reference())
            }
            Remote::Image(d) => conflicts.push(format!(
                "{} holds image {d}, but {} here is {id}",
                it.reference(),
                it.local
            )),
            Remote::Other(what) => conflicts.push(format!(
                "{} holds {what}, not the single image {} ({id})",
                it.reference(),
                it.local
            )),
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(UserError::new(format!(
                "the registry {} already has {} of these tags with different content (nothing was pushed or changed):\n  {}",
                reg.host,
                conflicts.len(),
                conflicts.join("\n  ")
            ))
            .hint("publish under a new tag (`--tag TAG`), or replace them with `--force` (hosts that pulled the old image keep it until they pull again)")
            .into());
        }
        for c in &conflicts {
            eprintln!("--force: replacing: {c}");
        }
    }

    let docker_creds = creds.as_ref().map(|c| c.to_docker(&server));
    let mut published = Vec::new();
    for (it, id) in items.iter().zip(&ids) {
        let reference = it.reference();
        if it.local != reference {
            docker.tag_image(&it.local, &it.repository, &it.tag).await?;
        }
        eprintln!("{}: pushing {reference}", it.name);
        let (mut pushed, mut existing, mut digest) = (0, 0, None);
        let name = it.name;
        docker
            .push_image(&it.repository, &it.tag, docker_creds.clone(), |status| {
                if status == "Pushed" {
                    pushed += 1;
                } else if status == "Layer already exists" || status.starts_with("Mounted from") {
                    existing += 1;
                } else if let Some((_, rest)) = status.split_once("digest: ") {
                    digest = rest.split_whitespace().next().map(str::to_string);
                } else {
                    return;
                }
                eprintln!("{name} | {status}");
            })
            .await
            .map_err(|e| push_error(e.into(), reg, &reference))?;
        published.push(Published {
            name: it.name.to_string(),
            reference,
            digest,
            image_id: id.clone(),
            layers_pushed: pushed,
            layers_existing: existing,
        });
    }

    let refs: Vec<(String, String)> = published
        .iter()
        .map(|p| (images::stack_toml_key(&p.name), p.reference.clone()))
        .collect();
    let stack_toml_updated = stack_toml::point_images_at(&stack.dir, &refs)?;
    Ok(Report {
        registry: format!("{}/{}", reg.host, reg.namespace),
        layers_pushed: published.iter().map(|p| p.layers_pushed).sum(),
        images: published,
        stack_toml_updated,
    })
}

/// A push the engine reported as failed, in the user's terms.
fn push_error(e: anyhow::Error, reg: &Registry, reference: &str) -> anyhow::Error {
    let text = format!("{e:#}").to_lowercase();
    let host = &reg.host;
    if [
        "unauthorized",
        "authentication required",
        "denied",
        "no basic auth",
    ]
    .iter()
    .any(|w| text.contains(w))
    {
        return e.context(
            UserError::new(format!("the registry {host} refused the push of {reference}"))
                .hint(format!(
                    "check that the user may push to {}/{} (`docker login {host}`, or --username U --password-stdin)",
                    reg.host, reg.namespace
                )),
        );
    }
    if [
        "connection refused",
        "dial tcp",
        "no such host",
        "i/o timeout",
        "server gave http response",
    ]
    .iter()
    .any(|w| text.contains(w))
    {
        return e.context(
            UserError::new(format!(
                "the Docker Engine cannot reach the registry {host} to push {reference}"
            ))
            .hint(format!(
                "the engine pushes, not stackctl: check its network, and for a registry over plain http off loopback add `{host}` to `insecure-registries` in /etc/docker/daemon.json"
            )),
        );
    }
    e
}
