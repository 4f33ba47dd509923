-- runner: JavaScript workers and their versions. A new version (or a route change) NOTIFYs
-- 'runner_workers' with the worker name; every replica reloads it.
CREATE SCHEMA IF NOT EXISTS runner;

CREATE TABLE IF NOT EXISTS runner.workers (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    active_version  integer,
    routes          text[]      NOT NULL DEFAULT '{}',
    queues          text[]      NOT NULL DEFAULT '{}',
    vars            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    cpu_ms          integer     NOT NULL DEFAULT 50   CHECK (cpu_ms > 0),
    memory_mb       integer     NOT NULL DEFAULT 64   CHECK (memory_mb > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS runner.worker_versions (
    worker      text        NOT NULL REFERENCES runner.workers (name) ON DELETE CASCADE,
    version     integer     NOT NULL,
    source      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker, version)
);

-- Deploy a new version and make it active. Returns the version number.
-- cron: a schedule for the worker's scheduled() handler (5 fields, or 6 with seconds), in
-- time zone `timezone`; NULL removes it. The runner validates the expression when it first
-- sees the schedule (an invalid one is disabled and logged).
DROP FUNCTION IF EXISTS runner.deploy(text, text, text[], text[], jsonb);
CREATE OR REPLACE FUNCTION runner.deploy(
    name text,
    source text,
    routes text[] DEFAULT '{}',
    queues text[] DEFAULT '{}',
    vars jsonb DEFAULT '{}'::jsonb,
    cron text DEFAULT NULL,
    timezone text DEFAULT 'UTC'
) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, runner
AS $$
DECLARE
    v integer;
BEGIN
    INSERT INTO runner.workers (name, routes, queues, vars)
    VALUES (deploy.name, deploy.routes, deploy.queues, deploy.vars)
    ON CONFLICT ON CONSTRAINT workers_pkey DO UPDATE
        SET routes = excluded.routes, queues = excluded.queues, vars = excluded.vars,
            updated_at = now();
    SELECT coalesce(max(wv.version), 0) + 1 INTO v
      FROM runner.worker_versions wv WHERE wv.worker = deploy.name;
    INSERT INTO runner.worker_versions (worker, version, source) VALUES (deploy.name, v, deploy.source);
    UPDATE runner.workers w SET active_version = v, updated_at = now() WHERE w.name = deploy.name;
    IF deploy.cron IS NULL THEN
        DELETE FROM runner.schedules s WHERE s.name = 'worker:' || deploy.name;
    ELSE
        INSERT INTO runner.schedules (name, cron, timezone, queue, payload, next_tick)
        VALUES ('worker:' || deploy.name, deploy.cron, coalesce(deploy.timezone, 'UTC'), 'cron',
                jsonb_build_object('worker', deploy.name), NULL)
        ON CONFLICT ON CONSTRAINT schedules_pkey DO UPDATE
            SET cron = excluded.cron, timezone = excluded.timezone, payload = excluded.payload,
                enabled = true, next_tick = CASE
                    WHEN runner.schedules.cron = excluded.cron
                     AND runner.schedules.timezone = excluded.timezone
                    THEN runner.schedules.next_tick END,
                updated_at = now();
    END IF;
    RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION runner.workers_notify() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('runner_workers', OLD.name);
    ELSE
        PERFORM pg_notify('runner_workers', NEW.name);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS workers_notify ON runner.workers;
CREATE TRIGGER workers_notify
    AFTER INSERT OR UPDATE OR DELETE ON runner.workers
    FOR EACH ROW EXECUTE FUNCTION runner.workers_notify();
