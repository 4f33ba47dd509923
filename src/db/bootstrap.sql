-- The role bootstrap: idempotent, run by `stackctl migrate` as the superuser on every deploy,
-- after the platform migrations and before the application's migrations.
--
-- It is a temporary function (gone when the session ends) so that it can report what it changed
-- and take the SCRAM verifiers as a bound parameter: `verifiers` maps each login to the verifier
-- stackctl computed from `.env` (the same string the pooler's user list holds). Plain-text
-- passwords never reach the server.
--
-- Roles (cluster-wide) and what they may do in this database:
--   db_migrator       LOGIN, owns the application schemas; runs the application's migrations
--   app_user          NOLOGIN, DML on what db_migrator creates
--   web_anon          NOLOGIN, SELECT on what db_migrator creates
--   read_only         NOLOGIN, SELECT on what db_migrator creates (and sequences)
--   db_authenticator  LOGIN NOINHERIT, may SET ROLE web_anon or app_user and nothing else
--   postgate          LOGIN NOINHERIT; reads postgate.tokens/tenants (grants in V1__postgate.sql)
--                     with INHERIT FALSE, so it reads tenant data only after SET ROLE
--   runner            LOGIN NOINHERIT, DML on schema runner, reads postgate's tokens,
--                     may SET ROLE postgate_admin (worker tenants and tokens for env.DB)
--   app               LOGIN, member of app_user: the applications' login
--   pooler_auth       LOGIN NOINHERIT: PgBouncer's auth_user; may only call pooler.auth_lookup
--                     (src/db/pooler_auth.sql), which returns the verifiers of postgate's
--                     tenant logins and of no other role
--   monitor           LOGIN, member of pg_monitor (INHERIT, no SET): the metrics exporters'
--                     login; reads statistics and settings (pg_stat_statements too, which
--                     only pg_read_all_stats may read), no table data
--   postgate_admin    (made by V1__postgate.sql) granted to db_migrator WITH SET, without INHERIT:
--                     the operator's admin path (`stackctl tenant|token`) does SET ROLE to it
--   anon, authenticated, service_role
--                     NOLOGIN NOINHERIT, service_role BYPASSRLS: Supabase's attributes, so that
--                     imported policies and an app's service paths behave as on Supabase; no
--                     rights here: grant them what you need in your own migrations
-- None of them may create roles or databases; only the superuser can.

CREATE OR REPLACE FUNCTION pg_temp.stackctl_bootstrap(verifiers jsonb) RETURNS SETOF text
    LANGUAGE plpgsql
AS $bootstrap$
DECLARE
    r record;
    v text;
    group_roles constant text[] := ARRAY['app_user', 'web_anon', 'read_only', 'anon', 'authenticated', 'service_role'];
BEGIN
    -- Group roles: NOLOGIN and no attributes, whatever they were before; Supabase's API roles
    -- as Supabase makes them (NOINHERIT; service_role BYPASSRLS).
    FOR r IN SELECT unnest(group_roles) AS name LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name) THEN
            EXECUTE format('CREATE ROLE %I', r.name);
            RETURN NEXT 'created role ' || r.name;
        END IF;
        EXECUTE format('ALTER ROLE %I NOLOGIN %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION %s PASSWORD NULL',
                       r.name,
                       CASE WHEN r.name IN ('anon', 'authenticated', 'service_role') THEN 'NOINHERIT' ELSE 'INHERIT' END,
                       CASE WHEN r.name = 'service_role' THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END);
    END LOOP;

    -- Logins, each with its SCRAM verifier. NOINHERIT makes new grants to it INHERIT FALSE.
    FOR r IN SELECT * FROM (VALUES
            ('db_migrator', true),
            ('db_authenticator', false),
            ('postgate', false),
            ('runner', false),
            ('app', true),
            ('pooler_auth', false),
            ('monitor', true)) AS t(name, inherit) LOOP
        v := verifiers ->> r.name;
        IF v IS NULL OR v NOT LIKE 'SCRAM-SHA-256$4096:%' THEN
            RAISE EXCEPTION 'no SCRAM verifier given for login %', r.name;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r.name);
            RETURN NEXT 'created login ' || r.name;
        END IF;
        EXECUTE format('ALTER ROLE %I LOGIN %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS VALID UNTIL %L',
                       r.name, CASE WHEN r.inherit THEN 'INHERIT' ELSE 'NOINHERIT' END, 'infinity');
        IF (SELECT rolpassword FROM pg_authid WHERE rolname = r.name) IS DISTINCT FROM v THEN
            EXECUTE format('ALTER ROLE %I PASSWORD %L', r.name, v);
            -- A malformed verifier would be hashed as if it were a password: refuse that.
            IF (SELECT rolpassword FROM pg_authid WHERE rolname = r.name) IS DISTINCT FROM v THEN
                RAISE EXCEPTION 'PostgreSQL did not store the SCRAM verifier of % as given', r.name;
            END IF;
            RETURN NEXT 'set password of ' || r.name;
        END IF;
    END LOOP;

    -- db_authenticator may become web_anon or app_user, inherits neither, and is member of nothing else.
    FOR r IN SELECT g.rolname AS grp, gr.rolname AS grantor
               FROM pg_auth_members m
               JOIN pg_roles g ON g.oid = m.roleid
               JOIN pg_roles gr ON gr.oid = m.grantor
              WHERE m.member = 'db_authenticator'::regrole
                AND g.rolname NOT IN ('web_anon', 'app_user') LOOP
        EXECUTE format('REVOKE %I FROM db_authenticator GRANTED BY %I', r.grp, r.grantor);
        RETURN NEXT format('revoked %s from db_authenticator', r.grp);
    END LOOP;
    GRANT web_anon, app_user TO db_authenticator WITH INHERIT FALSE, SET TRUE;
    -- The exporters' login reads statistics (pg_monitor) and is member of nothing else.
    FOR r IN SELECT g.rolname AS grp, gr.rolname AS grantor
               FROM pg_auth_members m
               JOIN pg_roles g ON g.oid = m.roleid
               JOIN pg_roles gr ON gr.oid = m.grantor
              WHERE m.member = 'monitor'::regrole
                AND g.rolname <> 'pg_monitor' LOOP
        EXECUTE format('REVOKE %I FROM monitor GRANTED BY %I', r.grp, r.grantor);
        RETURN NEXT format('revoked %s from monitor', r.grp);
    END LOOP;
    GRANT pg_monitor TO monitor WITH INHERIT TRUE, SET FALSE;
    GRANT app_user TO app WITH INHERIT TRUE;
    -- The operator's login administers postgate's tenants and tokens after SET ROLE only.
    GRANT postgate_admin TO db_migrator WITH INHERIT FALSE, SET TRUE;

    -- Nobody creates in schema public but db_migrator; db_migrator may create schemas.
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    GRANT USAGE, CREATE ON SCHEMA public TO db_migrator;
    EXECUTE format('GRANT CREATE ON DATABASE %I TO db_migrator', current_database());

    -- What db_migrator creates from now on follows the same rules.
    ALTER DEFAULT PRIVILEGES FOR ROLE db_migrator GRANT USAGE ON SCHEMAS TO app_user, web_anon, read_only;
    ALTER DEFAULT PRIVILEGES FOR ROLE db_migrator GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_user;
    ALTER DEFAULT PRIVILEGES FOR ROLE db_migrator GRANT SELECT ON TABLES TO web_anon, read_only;
    ALTER DEFAULT PRIVILEGES FOR ROLE db_migrator GRANT USAGE, SELECT ON SEQUENCES TO app_user;
    ALTER DEFAULT PRIVILEGES FOR ROLE db_migrator GRANT SELECT ON SEQUENCES TO read_only;

    -- The application's migration history belongs to db_migrator, which applies those migrations.
    GRANT USAGE ON SCHEMA stackctl TO db_migrator;
    ALTER TABLE stackctl.app_migrations OWNER TO db_migrator;

    -- Platform schemas: each service login gets what its issue needs, nothing more.
    GRANT USAGE ON SCHEMA postgate TO postgate, runner;
    -- postgate's own grants live in its migration (V1): it reads tokens and tenants, stamps
    -- last_used_at, and nothing more.
    GRANT SELECT ON postgate.tenants, postgate.tokens TO runner;
    GRANT UPDATE (last_used_at) ON postgate.tokens TO runner;
    -- `runner worker deploy --db-tenant` makes the worker's tenant and token (SET ROLE
    -- postgate_admin; runner is NOINHERIT). It adds little: the runner holds the token pepper,
    -- from which every tenant login's password is derived.
    GRANT postgate_admin TO runner;

    GRANT USAGE ON SCHEMA runner TO runner, app_user;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA runner TO runner;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA runner TO runner;
    GRANT EXECUTE ON FUNCTION runner.enqueue(text, jsonb, timestamptz, integer) TO app_user, runner;
    -- Workflows (issue 18): start one and send it events from the application's transaction.
    GRANT EXECUTE ON FUNCTION runner.workflow_create(text, text, jsonb),
                              runner.workflow_send_event(text, text, jsonb) TO app_user, runner;
    GRANT EXECUTE ON FUNCTION runner.workflow_wake(text, timestamptz) TO runner;

    -- pg_stat_statements (our image preloads it) in schema `extensions`, where Supabase keeps it:
    -- the PostgreSQL dashboard's slowest statements. Only statistics readers (pg_read_all_stats,
    -- so monitor) may read it: other roles that use `extensions` see no one's statements.
    IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_stat_statements') THEN
        CREATE SCHEMA IF NOT EXISTS extensions;
        IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements') THEN
            CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions;
            RETURN NEXT 'created extension pg_stat_statements';
        END IF;
        SELECT n.nspname INTO v FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_stat_statements';
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO monitor', v);
        EXECUTE format('REVOKE ALL ON %I.pg_stat_statements, %I.pg_stat_statements_info FROM PUBLIC', v, v);
        EXECUTE format('GRANT SELECT ON %I.pg_stat_statements, %I.pg_stat_statements_info TO pg_read_all_stats', v, v);
        FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p
                  WHERE p.pronamespace = v::regnamespace AND p.proname = 'pg_stat_statements' LOOP
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.f);
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pg_read_all_stats', r.f);
        END LOOP;
        -- The exporter names the view without a schema.
        EXECUTE format('ALTER ROLE monitor SET search_path = pg_catalog, %I', v);
    END IF;
END
$bootstrap$;
