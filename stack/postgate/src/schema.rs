//! The SQL postgate needs, for the platform migrations and the role bootstrap to embed.

/// Roles besides the service login: run by the role bootstrap (needs CREATEROLE), before [`SQL`].
pub const ROLES_SQL: &str = include_str!("../sql/roles.sql");

/// Schema `postgate`: tenants, tokens and the SECURITY DEFINER functions. Idempotent.
pub const SQL: &str = include_str!("../sql/schema.sql");
