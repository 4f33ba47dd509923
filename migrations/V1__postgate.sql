-- postgate: tenants and their tokens (issue 5).
--
-- Platform objects are owned by the superuser that runs `stackctl migrate`; the role bootstrap
-- grants the `postgate` and `runner` logins exactly what they need on them. Nothing here is
-- visible to application roles.

CREATE SCHEMA postgate;
REVOKE ALL ON SCHEMA postgate FROM PUBLIC;

-- A tenant is a schema with its own NOLOGIN roles (created by postgate, see docs/privileges.md).
CREATE TABLE postgate.tenants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    schema_name text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tokens are shown once; only a keyed hash (HMAC-SHA-256 with POSTGATE_TOKEN_PEPPER) is stored.
CREATE TABLE postgate.tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES postgate.tenants (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    prefix       text NOT NULL,
    hash         bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    permissions  text[] NOT NULL CHECK (
                     cardinality(permissions) > 0
                     AND permissions <@ ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'DDL']::text[]),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX tokens_tenant_id ON postgate.tokens (tenant_id);

-- Every replica caches token lookups and drops an entry when told so on channel postgate_tokens
-- (payload: the token's hash, hex). `last_used_at` updates do not notify.
CREATE FUNCTION postgate.notify_token_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_notify('postgate_tokens', encode(CASE WHEN TG_OP = 'DELETE' THEN OLD.hash ELSE NEW.hash END, 'hex'));
    RETURN NULL;
END
$$;

CREATE TRIGGER tokens_changed
    AFTER INSERT OR DELETE OR UPDATE OF hash, permissions, expires_at, revoked_at, tenant_id
    ON postgate.tokens
    FOR EACH ROW EXECUTE FUNCTION postgate.notify_token_change();
