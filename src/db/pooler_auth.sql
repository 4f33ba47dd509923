-- PgBouncer's auth_query: how the pooler learns the SCRAM verifiers of postgate's tenant logins
-- (`pgt_<tenant>_<code>_login`), which postgate creates at run time and so cannot be in the
-- pooler's rendered user list. Idempotent; run as the superuser by the role bootstrap after the
-- `pooler_auth` login exists (postgate's tests run this very file).
--
-- PgBouncer connects as `pooler_auth` (LOGIN NOINHERIT, member of nothing, no rights but EXECUTE
-- on this function) and runs `SELECT username, password FROM pooler.auth_lookup($1)` for a user
-- not in its auth_file. The function is SECURITY DEFINER (owned by the superuser, since only it may
-- read pg_authid) and answers for postgate's tenant logins only: never a superuser, nor a role
-- with CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, nor any role outside the `pgt_*_login`
-- pattern. It returns the verifier PostgreSQL stores, so PgBouncer passes the client's SCRAM proof
-- through to the server (same salt and iterations on both sides).
CREATE SCHEMA IF NOT EXISTS pooler;
REVOKE ALL ON SCHEMA pooler FROM PUBLIC;
GRANT USAGE ON SCHEMA pooler TO pooler_auth;

CREATE OR REPLACE FUNCTION pooler.auth_lookup(p_user text)
RETURNS TABLE (username text, password text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT a.rolname::text, a.rolpassword
    FROM pg_catalog.pg_authid a
   WHERE a.rolname = p_user
     AND a.rolname ~ '^pgt_[a-z][a-z0-9_]*_login$'
     AND a.rolcanlogin
     AND NOT (a.rolsuper OR a.rolcreaterole OR a.rolcreatedb OR a.rolreplication OR a.rolbypassrls)
     AND a.rolpassword LIKE 'SCRAM-SHA-256$%'
     AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil > now())
$$;
REVOKE ALL ON FUNCTION pooler.auth_lookup(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pooler.auth_lookup(text) TO pooler_auth;

-- postgate's COMMIT check for tokens that may write: the session's login row in pg_authid was not
-- written by this transaction. A statement that resets its role (a `DO` block, a function) could
-- otherwise change its own login's password, which PostgreSQL lets every role do, and lock that
-- login out of the pooler; the check makes postgate roll such a transaction back.
-- `age(xmin) > 0`: the row's version is older than this transaction (age is 0 for a row written by
-- this transaction, negative for one of its subtransactions; a frozen row counts as old). Anyone
-- may call it: it tells a session only whether its own login changed in its own transaction.
GRANT USAGE ON SCHEMA pooler TO PUBLIC;
CREATE OR REPLACE FUNCTION pooler.login_untouched()
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(
    (SELECT pg_catalog.age(a.xmin) > 0 FROM pg_catalog.pg_authid a WHERE a.rolname = session_user),
    false)
$$;
REVOKE ALL ON FUNCTION pooler.login_untouched() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pooler.login_untouched() TO PUBLIC;
