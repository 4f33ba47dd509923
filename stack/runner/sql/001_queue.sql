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
