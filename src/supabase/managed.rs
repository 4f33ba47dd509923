//! What Supabase manages, and therefore what an import leaves behind (see docs/import-supabase.md).

/// Schemas Supabase's services own. Their objects are not imported; `auth.users` is the one
/// exception (its definition and rows come along so that foreign keys to it hold).
pub const SCHEMAS: &[&str] = &[
    "auth",
    "storage",
    "realtime",
    "_realtime",
    "graphql",
    "graphql_public",
    "vault",
    "pgsodium",
    "pgsodium_masks",
    "supabase_functions",
    "supabase_migrations",
    "net",
    "cron",
    "pgbouncer",
    "extensions",
    "_analytics",
    "_supavisor",
    "etl",
    "pgmq",
    "pgtle",
    "dbdev",
    "repack",
    "topology",
    "tiger",
    "tiger_data",
    "timescaledb_information",
    "timescaledb_experimental",
    "_timescaledb_catalog",
    "_timescaledb_internal",
    "_timescaledb_cache",
    "_timescaledb_config",
    "_timescaledb_functions",
    "supabase_subscription_mgmt",
];

/// Extensions that are part of Supabase's own services: never created in the target.
pub const EXTENSIONS: &[&str] = &[
    "plpgsql",
    "pg_graphql",
    "pg_net",
    "pgsodium",
    "supabase_vault",
    "pg_stat_statements",
    "pgjwt",
    "pg_tle",
];

/// Publications Supabase Realtime owns.
pub fn is_realtime_publication(name: &str) -> bool {
    name.starts_with("supabase_realtime")
}

pub fn is_managed_schema(name: &str) -> bool {
    SCHEMAS.contains(&name) || name.starts_with("_timescaledb")
}

/// The roles Supabase manages (`postgres` is not one: it owns the application). Their attributes
/// and memberships are compared wherever source and target both have them.
pub const ROLES: &[&str] = &[
    "anon",
    "authenticated",
    "service_role",
    "authenticator",
    "supabase_admin",
    "supabase_auth_admin",
    "supabase_storage_admin",
    "supabase_functions_admin",
    "supabase_realtime_admin",
    "supabase_replication_admin",
    "supabase_read_only_user",
    "supabase_etl_admin",
    "dashboard_user",
    "pgbouncer",
    "pgtle_admin",
];
