//! `stackctl tenant|token|gen-token`: postgate's admin CLI, run in the stack.
//!
//! The requests are postgate's own types (`protocol::admin`); each becomes the `postgate tenant|token
//! ...` argv postgate parses, and the engine runs it in a one-off container of the `postgate`
//! service (see `engine::cmd_postgate_admin`), so the admin path needs no database port on the
//! host and no postgate binary beside stackctl.

use anyhow::Result;

use crate::cli::{GenTokenArgs, TenantAction, TokenAction};
use crate::config::Stack;
use crate::engine;

/// `stackctl tenant ...`.
pub fn run_tenant(stack: &Stack, action: TenantAction) -> Result<()> {
    engine::cmd_postgate_admin(stack, action.to_args())
}

/// `stackctl token ...`.
pub fn run_token(stack: &Stack, action: TokenAction) -> Result<()> {
    engine::cmd_postgate_admin(stack, action.to_args())
}

/// `stackctl gen-token TENANT NAME --permissions ...`.
pub fn run_gen_token(stack: &Stack, a: GenTokenArgs) -> Result<()> {
    engine::cmd_postgate_admin(stack, a.into_create().to_args())
}
