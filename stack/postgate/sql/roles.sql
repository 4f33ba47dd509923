-- postgate: the roles its schema needs, besides the service login `postgate` (created by the platform
-- role bootstrap, LOGIN, no CREATEROLE, member of no tenant role). Idempotent; run by a role with
-- CREATEROLE (the bootstrap), before schema.sql.
--
--   postgate_definer  NOLOGIN CREATEROLE. Owns the SECURITY DEFINER functions of schema.sql and,
--                     through them only, creates the tenants' roles. Nobody logs in as it and no
--                     login is a member of it, so CREATEROLE never reaches a client.
--   postgate_admin    NOLOGIN. May call those functions and manage tokens: the admin CLI path
--                     (`postgate tenant|token ...`). Grant it to the operator's login (db_migrator).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'postgate_definer') THEN
    CREATE ROLE postgate_definer NOLOGIN CREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'postgate_admin') THEN
    CREATE ROLE postgate_admin NOLOGIN;
  END IF;
  -- create_tenant makes a schema per tenant.
  EXECUTE format('GRANT CREATE ON DATABASE %I TO postgate_definer', current_database());
END
$$;
