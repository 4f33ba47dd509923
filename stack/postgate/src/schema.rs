//! The SQL postgate needs: the platform migration `migrations/V1__postgate.sql` (roles
//! `postgate_definer` and `postgate_admin`, schema `postgate`, the SECURITY DEFINER tenant
//! functions), embedded verbatim so postgate's tests run exactly what `stackctl migrate` applies.

/// Roles, schema `postgate`: tenants, tokens and the SECURITY DEFINER functions. Idempotent.
pub const SQL: &str = include_str!("../../../migrations/V1__postgate.sql");
