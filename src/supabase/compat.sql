-- The Supabase compatibility layer, run by `stackctl import-supabase` as the superuser before the
-- restore. Idempotent: every statement holds whether it ran before or not.
--
--   schemas   the imported schemas, created for db_migrator (the restore runs as it)
--   exts      [{name, schema}]: the source's extensions that the target has
--   make_users  create a minimal auth.users when the source has none (so foreign keys hold)
--
-- It returns one row per extension that could not be created, with Postgres's reason.
CREATE OR REPLACE FUNCTION pg_temp.stackctl_import_compat(schemas text[], exts jsonb, make_users boolean)
    RETURNS TABLE (extension text, error text)
    LANGUAGE plpgsql
AS $compat$
DECLARE
    s text;
    e record;
    missing text;
BEGIN
    SELECT string_agg(r, ', ') INTO missing
      FROM unnest(ARRAY['db_migrator', 'anon', 'authenticated', 'service_role', 'app_user', 'web_anon', 'read_only']) r
     WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'the role bootstrap has not run on this database (missing roles: %)', missing
            USING ERRCODE = 'undefined_object';
    END IF;

    -- auth: the functions policies call, exactly as Supabase defines them.
    CREATE SCHEMA IF NOT EXISTS auth;
    GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, app_user, web_anon, read_only, db_migrator;
    GRANT CREATE ON SCHEMA auth TO db_migrator;
    CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
      select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $f$;
    CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
      select coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
      )::text
    $f$;
    CREATE OR REPLACE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $f$
      select coalesce(
        nullif(current_setting('request.jwt.claim.email', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
      )::text
    $f$;
    CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
      select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
      )::jsonb
    $f$;
    IF make_users AND to_regclass('auth.users') IS NULL THEN
        CREATE TABLE auth.users (
            id uuid PRIMARY KEY,
            email text,
            raw_user_meta_data jsonb,
            created_at timestamptz NOT NULL DEFAULT now()
        );
    END IF;

    -- extensions: where Supabase keeps them, and on every session's search_path.
    CREATE SCHEMA IF NOT EXISTS extensions;
    GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role, app_user, web_anon, read_only, db_migrator;
    EXECUTE format('ALTER DATABASE %I SET search_path = "$user", public, extensions', current_database());

    FOREACH s IN ARRAY schemas LOOP
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION db_migrator', s);
        EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO db_migrator', s);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO app_user, web_anon, read_only', s);
    END LOOP;

    FOR e IN SELECT * FROM jsonb_to_recordset(exts) AS x(name text, schema text) LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_extension WHERE extname = e.name);
        BEGIN
            EXECUTE format('CREATE EXTENSION %I WITH SCHEMA %I CASCADE', e.name, e.schema);
        EXCEPTION WHEN OTHERS THEN
            extension := e.name;
            error := SQLERRM;
            RETURN NEXT;
        END;
    END LOOP;
END
$compat$;
