-- runner: the durable queue, cron schedules and workers (issue 6).
-- Source of truth for the runner's schema: the runner crate embeds this file too (runner::sql),
-- for `runner migrate` and its tests. Every statement is idempotent.

-- runner: durable job queue.
-- Jobs live in one table; a claim is a lease (locked_by, locked_until) renewed by heartbeat.
-- States: ready -> running -> done | ready (retry, with backoff) | dead (after max_attempts).
CREATE SCHEMA IF NOT EXISTS runner;

CREATE TABLE IF NOT EXISTS runner.jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue         text        NOT NULL CHECK (queue <> ''),
    payload       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state         text        NOT NULL DEFAULT 'ready'
                              CHECK (state IN ('ready', 'running', 'done', 'dead')),
    run_at        timestamptz NOT NULL DEFAULT now(),
    attempts      integer     NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    locked_by     text,
    locked_until  timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);

-- Claim path: ready jobs of one queue in run_at order.
CREATE INDEX IF NOT EXISTS jobs_ready_idx ON runner.jobs (queue, run_at, id) WHERE state = 'ready';
-- Reaper path: running jobs whose lease ended.
CREATE INDEX IF NOT EXISTS jobs_lease_idx ON runner.jobs (locked_until) WHERE state = 'running';
-- Pruning of finished jobs.
CREATE INDEX IF NOT EXISTS jobs_finished_idx ON runner.jobs (finished_at) WHERE state = 'done';

-- Enqueue from any transaction: SELECT runner.enqueue('emails', '{"to":"a@b"}');
-- SECURITY DEFINER so application roles need EXECUTE only, not rights on runner.jobs.
CREATE OR REPLACE FUNCTION runner.enqueue(
    queue text,
    payload jsonb DEFAULT '{}'::jsonb,
    run_at timestamptz DEFAULT now(),
    max_attempts integer DEFAULT 5
) RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, runner
AS $$
    INSERT INTO runner.jobs (queue, payload, run_at, max_attempts)
    VALUES (enqueue.queue, coalesce(enqueue.payload, '{}'::jsonb),
            coalesce(enqueue.run_at, now()), coalesce(enqueue.max_attempts, 5))
    RETURNING id
$$;

REVOKE ALL ON FUNCTION runner.enqueue(text, jsonb, timestamptz, integer) FROM PUBLIC;

-- Wake consumers: one NOTIFY per queue per statement (payload = queue name; Postgres
-- folds identical notifications of one transaction into one).
CREATE OR REPLACE FUNCTION runner.jobs_notify() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    q text;
BEGIN
    FOR q IN SELECT DISTINCT n.queue FROM new_jobs n WHERE n.state = 'ready' AND n.run_at <= now() LOOP
        PERFORM pg_notify('runner_jobs', q);
    END LOOP;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS jobs_notify ON runner.jobs;
CREATE TRIGGER jobs_notify
    AFTER INSERT ON runner.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION runner.jobs_notify();

-- runner: cron schedules. Each due row is claimed with FOR UPDATE SKIP LOCKED by one replica,
-- which inserts one job and moves next_tick forward in the same transaction: a tick fires once
-- across replicas. cron_ticks records every fired tick; its primary key is a second guard.
CREATE SCHEMA IF NOT EXISTS runner;

CREATE TABLE IF NOT EXISTS runner.schedules (
    name        text PRIMARY KEY CHECK (name <> ''),
    cron        text        NOT NULL,
    timezone    text        NOT NULL DEFAULT 'UTC',
    queue       text        NOT NULL DEFAULT 'cron',
    payload     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled     boolean     NOT NULL DEFAULT true,
    next_tick   timestamptz,
    last_tick   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS schedules_due_idx ON runner.schedules (next_tick) WHERE enabled;

CREATE TABLE IF NOT EXISTS runner.cron_ticks (
    schedule   text        NOT NULL REFERENCES runner.schedules (name) ON DELETE CASCADE,
    tick       timestamptz NOT NULL,
    job_id     bigint,
    missed     integer     NOT NULL DEFAULT 0,
    fired_by   text        NOT NULL,
    fired_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule, tick)
);

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

