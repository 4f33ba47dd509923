-- postgate: its roles, tenants and tokens (issue 5). Source of truth for postgate's schema: the
-- postgate crate embeds this file too (postgate::schema::SQL) for its tests. Idempotent.
-- Runs as the superuser (platform migrations), before the role bootstrap; the bootstrap then makes
-- `postgate` a LOGIN (NOINHERIT, no CREATEROLE, member of nothing) with its password from .env.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'postgate') THEN
    CREATE ROLE postgate NOLOGIN NOINHERIT;
  END IF;
END
$$;

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

-- postgate: tenants and tokens (schema `postgate`). Idempotent: safe to run on every start.
-- Needs the roles of roles.sql and the service login `postgate`; run as the schema's owner
-- (superuser or db_migrator with membership in postgate_definer).
--
-- How isolation is built (PostgreSQL is the wall, the SQL parser only a second one):
--   * A tenant NAME is a schema NAME owned by the NOLOGIN role pgt_NAME_owner (DDL tokens act as it),
--     and four NOLOGIN privilege roles pgt_NAME_{select,insert,update,delete}; default privileges make
--     every table the owner creates follow them.
--   * A token with a given permission set uses a NOLOGIN role pgt_NAME_<code> (code = the letters
--     s,i,u,d it holds, or `owner` for DDL) that inherits the matching privilege roles, and a LOGIN
--     role pgt_NAME_<code>_login (NOINHERIT) whose only membership is that role, with SET but no
--     INHERIT. postgate connects as that login and runs every request inside
--     `BEGIN; SET LOCAL ROLE pgt_NAME_<code>; ...`.
--   * So a client that smuggles `SET ROLE x`, `RESET ROLE`, `SET SESSION AUTHORIZATION` or
--     `set_config('role', ...)` past the parser can only reach roles its own login may reach: its own
--     permission set in its own tenant, or the bare login, which can read nothing. PostgreSQL checks
--     SET ROLE against the *session* user, which is why one shared service login that may SET ROLE
--     to every tenant would not be a wall at all.
--   * The service login `postgate` only reads postgate.tokens/tenants (and stamps last_used_at);
--     it is a member of no tenant role and has no CREATEROLE.
--   * Creating roles needs CREATEROLE. Only postgate_definer has it; it is reachable solely through
--     the two SECURITY DEFINER functions below (fixed search_path, names validated and quoted with
--     format(%I)), which only postgate_admin may execute.

CREATE SCHEMA IF NOT EXISTS postgate;
REVOKE ALL ON SCHEMA postgate FROM PUBLIC;

CREATE TABLE IF NOT EXISTS postgate.tenants (
  name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,30}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS postgate.tokens (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant       text NOT NULL REFERENCES postgate.tenants (name),
  name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  prefix       text NOT NULL,            -- the first characters of the token, for `token list`
  hash         bytea NOT NULL UNIQUE,    -- HMAC-SHA256(pepper, token); the token itself is never stored
  permissions  text[] NOT NULL CHECK (permissions <@ ARRAY['SELECT','INSERT','UPDATE','DELETE','DDL']
                                      AND cardinality(permissions) > 0),
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  last_used_at timestamptz,
  revoked_at   timestamptz,
  UNIQUE (tenant, name)
);

-- Revocation and other changes wake every replica (LISTEN postgate_tokens).
CREATE OR REPLACE FUNCTION postgate.notify_token_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM pg_notify('postgate_tokens', encode(NEW.hash, 'hex'));
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS tokens_notify ON postgate.tokens;
CREATE TRIGGER tokens_notify AFTER UPDATE OF revoked_at, expires_at, permissions ON postgate.tokens
  FOR EACH ROW EXECUTE FUNCTION postgate.notify_token_change();

-- create_tenant(name): schema + owner + privilege roles. SECURITY DEFINER, owned by postgate_definer.
CREATE OR REPLACE FUNCTION postgate.create_tenant(p_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_owner text := 'pgt_' || p_name || '_owner';
  v_role  text;
  v_perm  text;
BEGIN
  IF p_name IS NULL OR p_name !~ '^[a-z][a-z0-9_]{0,30}$' THEN
    RAISE EXCEPTION 'invalid tenant name: use 1-31 characters a-z, 0-9, _ starting with a letter'
      USING ERRCODE = '22023';
  END IF;
  IF p_name IN ('public', 'postgate', 'information_schema') OR p_name LIKE 'pg\_%' THEN
    RAISE EXCEPTION 'reserved tenant name: %', p_name USING ERRCODE = '22023';
  END IF;
  INSERT INTO postgate.tenants (name) VALUES (p_name);  -- unique_violation if it exists
  EXECUTE format('CREATE ROLE %I NOLOGIN', v_owner);
  -- Since PostgreSQL 16 the creator holds ADMIN on the role but neither its privileges nor SET
  -- ROLE; it needs both while it makes the schema and its grants, and drops them at the end.
  EXECUTE format('GRANT %I TO %I WITH INHERIT TRUE, SET TRUE', v_owner, current_user);
  EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %I', p_name, v_owner);
  FOREACH v_perm IN ARRAY ARRAY['select', 'insert', 'update', 'delete'] LOOP
    v_role := 'pgt_' || p_name || '_' || v_perm;
    EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', p_name, v_role);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT %s ON TABLES TO %I',
                   v_owner, p_name, upper(v_perm), v_role);
  END LOOP;
  EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO %I',
                 v_owner, p_name, 'pgt_' || p_name || '_insert');
  EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON SEQUENCES TO %I',
                 v_owner, p_name, 'pgt_' || p_name || '_select');
  -- Functions the tenant creates are not executable by everyone.
  EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC',
                 v_owner, p_name);
  EXECUTE format('REVOKE %I FROM %I', v_owner, current_user);
END
$$;

-- ensure_login(tenant, code, scram_verifier): the permission-set role and its login, created on
-- first use, password (a SCRAM verifier computed by the CLI, never a clear password) reset each time.
-- Returns the login name.
CREATE OR REPLACE FUNCTION postgate.ensure_login(p_tenant text, p_code text, p_verifier text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role  text;
  v_login text;
  v_letter text;
BEGIN
  IF NOT EXISTS (SELECT FROM postgate.tenants WHERE name = p_tenant) THEN
    RAISE EXCEPTION 'no such tenant: %', p_tenant USING ERRCODE = '22023';
  END IF;
  IF p_code IS NULL OR p_code !~ '^(owner|s?i?u?d?)$' OR p_code = '' THEN
    RAISE EXCEPTION 'invalid permission code: %', p_code USING ERRCODE = '22023';
  END IF;
  IF p_verifier IS NULL OR p_verifier !~ '^SCRAM-SHA-256\$' THEN
    RAISE EXCEPTION 'a SCRAM-SHA-256 verifier is required' USING ERRCODE = '22023';
  END IF;
  v_role := 'pgt_' || p_tenant || '_' || p_code;
  v_login := v_role || '_login';
  IF p_code <> 'owner' AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = v_role) THEN
    EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
    FOREACH v_letter IN ARRAY regexp_split_to_array(p_code, '') LOOP
      EXECUTE format('GRANT %I TO %I WITH INHERIT TRUE, SET FALSE', 'pgt_' || p_tenant || '_' ||
        CASE v_letter WHEN 's' THEN 'select' WHEN 'i' THEN 'insert' WHEN 'u' THEN 'update' ELSE 'delete' END,
        v_role);
    END LOOP;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = v_login) THEN
    EXECUTE format('CREATE ROLE %I LOGIN NOINHERIT PASSWORD %L', v_login, p_verifier);
    EXECUTE format('GRANT %I TO %I WITH INHERIT FALSE, SET TRUE', v_role, v_login);
  ELSE
    EXECUTE format('ALTER ROLE %I PASSWORD %L', v_login, p_verifier);
  END IF;
  RETURN v_login;
END
$$;

ALTER FUNCTION postgate.create_tenant(text) OWNER TO postgate_definer;
ALTER FUNCTION postgate.ensure_login(text, text, text) OWNER TO postgate_definer;
REVOKE ALL ON FUNCTION postgate.create_tenant(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION postgate.ensure_login(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION postgate.notify_token_change() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION postgate.create_tenant(text) TO postgate_admin;
GRANT EXECUTE ON FUNCTION postgate.ensure_login(text, text, text) TO postgate_admin;

GRANT USAGE ON SCHEMA postgate TO postgate, postgate_admin, postgate_definer;
GRANT SELECT, INSERT ON postgate.tenants TO postgate_definer;
GRANT SELECT ON postgate.tenants TO postgate_admin, postgate;
GRANT SELECT, INSERT, UPDATE ON postgate.tokens TO postgate_admin;
GRANT SELECT, UPDATE (last_used_at) ON postgate.tokens TO postgate;
