-- runner: per-worker limits (NULL = the replica's default from stack.toml [runner]), the worker's
-- postgate binding for env.DB, and its secrets, encrypted by the runner (issue 6).
-- Numbered 6 after the issue so it cannot collide with other platform migrations in flight.
-- Source of truth: the runner crate embeds this file too (runner::sql). Every statement is idempotent.

ALTER TABLE runner.workers ALTER COLUMN cpu_ms DROP NOT NULL;
ALTER TABLE runner.workers ALTER COLUMN cpu_ms DROP DEFAULT;
ALTER TABLE runner.workers ALTER COLUMN memory_mb DROP NOT NULL;
ALTER TABLE runner.workers ALTER COLUMN memory_mb DROP DEFAULT;
ALTER TABLE runner.workers ADD COLUMN IF NOT EXISTS wall_ms     integer CHECK (wall_ms > 0);
ALTER TABLE runner.workers ADD COLUMN IF NOT EXISTS body_bytes  integer CHECK (body_bytes >= 0);
ALTER TABLE runner.workers ADD COLUMN IF NOT EXISTS concurrency integer CHECK (concurrency > 0);
-- env.DB: the postgate tenant and permissions the worker's token was made for.
ALTER TABLE runner.workers ADD COLUMN IF NOT EXISTS db_tenant      text;
ALTER TABLE runner.workers ADD COLUMN IF NOT EXISTS db_permissions text[];

-- Secrets (and the worker's postgate token, under the reserved name '__db_token') sealed with
-- ChaCha20-Poly1305 under RUNNER_SECRETS_KEY; the additional data binds each one to its worker
-- and name, so a row copied to another worker does not open. Only the `runner` login reads them.
CREATE TABLE IF NOT EXISTS runner.worker_secrets (
    worker      text        NOT NULL REFERENCES runner.workers (name) ON DELETE CASCADE,
    name        text        NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
    nonce       bytea       NOT NULL CHECK (length(nonce) = 12),
    sealed      bytea       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker, name)
);
REVOKE ALL ON runner.worker_secrets FROM PUBLIC;
