//! `Ctx`: what every command shares, made once by `main` — the stack directory (absolute), the
//! async runtime, and, when a command first asks, the `Stack` (stack.toml), the `.env` values and
//! the Docker client.
//!
//! Why lazily: `init` runs before stack.toml exists, `render` and `migrate new` need no Docker,
//! and `migrate --database-url` needs neither; each is loaded at most once, so two parts of one
//! command never read two versions of `.env` or open two Docker connections.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};

use crate::config::Stack;
use crate::engine::Docker;
use crate::secrets::EnvFile;

pub struct Ctx {
    dir: PathBuf,
    runtime: tokio::runtime::Runtime,
    stack: OnceLock<Stack>,
    env: OnceLock<EnvFile>,
    docker: tokio::sync::OnceCell<Docker>,
}

impl Ctx {
    /// `dir` must already be absolute (`stackdir::resolve`): every path handed on, to Docker
    /// too, derives from it.
    pub fn new(dir: PathBuf) -> Result<Ctx> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(Ctx {
            dir,
            runtime,
            stack: OnceLock::new(),
            env: OnceLock::new(),
            docker: tokio::sync::OnceCell::new(),
        })
    }

    /// The stack directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// stack.toml, read and checked once.
    pub fn stack(&self) -> Result<&Stack> {
        if let Some(s) = self.stack.get() {
            return Ok(s);
        }
        let stack = Stack::load(&self.dir)?;
        Ok(self.stack.get_or_init(|| stack))
    }

    /// The stack's `.env` as it is (a missing secret is not an error here: the commands that
    /// need every secret call `require_all`).
    pub fn env(&self) -> Result<&EnvFile> {
        if let Some(e) = self.env.get() {
            return Ok(e);
        }
        let env = EnvFile::load(&self.stack()?.env_path())?;
        Ok(self.env.get_or_init(|| env))
    }

    /// The Docker client, connected on first use (a clear error when the engine is unreachable).
    pub async fn docker(&self) -> Result<&Docker> {
        self.docker.get_or_try_init(Docker::connect).await
    }

    /// Runs a command's async part on the one runtime.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.runtime.block_on(fut)
    }
}
