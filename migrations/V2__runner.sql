-- runner: workers, the durable queue and cron triggers (issue 6).
--
-- Owned by the superuser that runs `stackctl migrate`; the bootstrap grants the `runner` login
-- DML here, and `app_user` EXECUTE on runner.enqueue only.

CREATE SCHEMA runner;
REVOKE ALL ON SCHEMA runner FROM PUBLIC;

-- A worker and its deployed versions; `current_version` is what replicas serve.
CREATE TABLE runner.workers (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    current_version integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE runner.worker_versions (
    worker      text NOT NULL REFERENCES runner.workers (name) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    script      text NOT NULL,
    routes      text[] NOT NULL DEFAULT '{}',
    queues      text[] NOT NULL DEFAULT '{}',
    vars        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Secret values (including the worker's postgate token), readable by the runner login only.
    secrets     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker, version)
);

-- Replicas reload a worker when told on channel runner_workers (payload: the worker's name).
CREATE FUNCTION runner.notify_worker_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_notify('runner_workers', CASE WHEN TG_OP = 'DELETE' THEN OLD.name ELSE NEW.name END);
    RETURN NULL;
END
$$;

CREATE TRIGGER workers_changed
    AFTER INSERT OR UPDATE OR DELETE ON runner.workers
    FOR EACH ROW EXECUTE FUNCTION runner.notify_worker_change();

-- The durable queue. A claim sets state 'running', locked_by and lease_until; heartbeats extend the
-- lease; a job whose lease ended is claimable again. Failures back off through run_at; after
-- max_attempts the job is 'dead' with its last error.
CREATE TABLE runner.jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue        text NOT NULL CHECK (queue <> ''),
    payload      jsonb NOT NULL DEFAULT 'null'::jsonb,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'dead')),
    run_at       timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    locked_by    text,
    lease_until  timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX jobs_ready ON runner.jobs (queue, run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_leases ON runner.jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_dead ON runner.jobs (queue) WHERE state = 'dead';

-- Any application may enqueue inside its own transaction: `SELECT runner.enqueue('q', '{}')`.
-- SECURITY DEFINER with a pinned search_path, so callers need EXECUTE only, not table rights.
CREATE FUNCTION runner.enqueue(
    queue text,
    payload jsonb,
    run_at timestamptz DEFAULT now(),
    max_attempts integer DEFAULT 5
) RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job_id bigint;
BEGIN
    INSERT INTO runner.jobs (queue, payload, run_at, max_attempts)
    VALUES (enqueue.queue, enqueue.payload, coalesce(enqueue.run_at, now()), coalesce(enqueue.max_attempts, 5))
    RETURNING id INTO job_id;
    PERFORM pg_notify('runner_jobs', enqueue.queue);
    RETURN job_id;
END
$$;
REVOKE ALL ON FUNCTION runner.enqueue(text, jsonb, timestamptz, integer) FROM PUBLIC;

-- Cron triggers: a replica claims due rows with FOR UPDATE SKIP LOCKED, enqueues the tick as a
-- job and moves next_run_at past now(), so each tick fires once across replicas.
CREATE TABLE runner.cron_triggers (
    worker      text NOT NULL REFERENCES runner.workers (name) ON DELETE CASCADE,
    schedule    text NOT NULL,
    timezone    text NOT NULL DEFAULT 'UTC',
    next_run_at timestamptz NOT NULL,
    last_run_at timestamptz,
    PRIMARY KEY (worker, schedule)
);
CREATE INDEX cron_triggers_due ON runner.cron_triggers (next_run_at);
