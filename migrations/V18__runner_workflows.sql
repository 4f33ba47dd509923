-- runner: durable workflows (issue 18; numbered after the issue so it cannot collide with other
-- platform migrations in flight). Source of truth: the runner crate embeds this file too
-- (runner::sql). Every statement is idempotent.
--
-- An instance advances as jobs on the runner's durable queue (queue 'workflows', payload
-- {"instance": ID}): leases with heartbeat and SKIP LOCKED, so a crashed replica's instance
-- continues elsewhere once its lease ends. `job_id` names the one job allowed to drive the
-- instance: a wake-up (a timer, an event) enqueues a new job and moves `job_id` to it in the same
-- transaction, so a stale or duplicated job finds it is not the current one and does nothing.
--
-- Every state change of an instance or a step writes its history row in the same transaction
-- (triggers below), so no crash can leave an entity changed without its history, or the reverse.
CREATE SCHEMA IF NOT EXISTS runner;

-- A workflow: a class exported by a deployed worker, known by its name (the class name).
CREATE TABLE IF NOT EXISTS runner.workflows (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z_$][A-Za-z0-9_$]{0,127}$'),
    worker      text        NOT NULL REFERENCES runner.workers (name) ON DELETE CASCADE,
    binding     text        NOT NULL CHECK (binding ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (worker, binding)
);

CREATE TABLE IF NOT EXISTS runner.workflow_instances (
    id           text PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9_][a-zA-Z0-9_-]{0,63}$'),
    workflow     text        NOT NULL,
    status       text        NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'running', 'paused', 'waiting',
                                               'errored', 'terminated', 'complete')),
    params       jsonb       NOT NULL DEFAULT 'null'::jsonb,
    output       jsonb,
    error        text,
    job_id       bigint,
    runs         integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX IF NOT EXISTS workflow_instances_status_idx
    ON runner.workflow_instances (workflow, status);

-- Steps, keyed by (name, occurrence): the n-th call of step.do('x') in one run is occurrence n.
-- seq is the order the run met them in: a replay that meets another step at a seq fails clearly.
CREATE TABLE IF NOT EXISTS runner.workflow_steps (
    instance_id  text        NOT NULL REFERENCES runner.workflow_instances (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    occurrence   integer     NOT NULL CHECK (occurrence >= 1),
    seq          integer     NOT NULL CHECK (seq >= 1),
    kind         text        NOT NULL CHECK (kind IN ('do', 'sleep', 'event')),
    status       text        NOT NULL
                             CHECK (status IN ('running', 'retrying', 'waiting', 'complete', 'errored')),
    attempt      integer     NOT NULL DEFAULT 1,
    output       jsonb,
    error        text,
    event_type   text,
    wake_at      timestamptz,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (instance_id, name, occurrence),
    UNIQUE (instance_id, seq)
);

-- The events inbox: kept until a waitForEvent of its type takes it (an event sent before the
-- wait is not lost). An event is taken by at most one step, and a step takes at most one event.
CREATE TABLE IF NOT EXISTS runner.workflow_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id    text        NOT NULL REFERENCES runner.workflow_instances (id) ON DELETE CASCADE,
    type           text        NOT NULL CHECK (type ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    payload        jsonb       NOT NULL DEFAULT 'null'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    taken_by_step  text,
    taken_by_occ   integer,
    taken_at       timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS workflow_events_taken_once
    ON runner.workflow_events (instance_id, taken_by_step, taken_by_occ)
    WHERE taken_by_step IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_events_inbox_idx
    ON runner.workflow_events (instance_id, type, id) WHERE taken_by_step IS NULL;

-- Hooks (step.createHook): an unguessable token that resumes a step when POSTed to. Table only
-- for now; see docs/workflows.md.
CREATE TABLE IF NOT EXISTS runner.workflow_hooks (
    token        text PRIMARY KEY CHECK (length(token) >= 32),
    instance_id  text        NOT NULL REFERENCES runner.workflow_instances (id) ON DELETE CASCADE,
    step_name    text        NOT NULL,
    occurrence   integer     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    used_at      timestamptz,
    UNIQUE (instance_id, step_name, occurrence)
);

-- History: one row per state change of an instance or a step, written by the triggers below in
-- the transaction of the change.
CREATE TABLE IF NOT EXISTS runner.workflow_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id  text        NOT NULL REFERENCES runner.workflow_instances (id) ON DELETE CASCADE,
    step_name    text,
    occurrence   integer,
    status       text        NOT NULL,
    attempt      integer,
    detail       text,
    at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS workflow_history_instance_idx
    ON runner.workflow_history (instance_id, id);

-- One history row per status change (and per new attempt of a step).
CREATE OR REPLACE FUNCTION runner.workflow_history_row() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    n jsonb := to_jsonb(NEW);
    o jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END;
    is_step boolean := TG_TABLE_NAME = 'workflow_steps';
BEGIN
    IF o IS NULL OR n->'status' IS DISTINCT FROM o->'status'
       OR n->'attempt' IS DISTINCT FROM o->'attempt' THEN
        INSERT INTO runner.workflow_history (instance_id, step_name, occurrence, status, attempt, detail)
        VALUES (CASE WHEN is_step THEN n->>'instance_id' ELSE n->>'id' END,
                CASE WHEN is_step THEN n->>'name' END,
                (n->>'occurrence')::integer, n->>'status', (n->>'attempt')::integer, n->>'error');
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS workflow_instance_history ON runner.workflow_instances;
CREATE TRIGGER workflow_instance_history
    AFTER INSERT OR UPDATE ON runner.workflow_instances
    FOR EACH ROW EXECUTE FUNCTION runner.workflow_history_row();
DROP TRIGGER IF EXISTS workflow_step_history ON runner.workflow_steps;
CREATE TRIGGER workflow_step_history
    AFTER INSERT OR UPDATE ON runner.workflow_steps
    FOR EACH ROW EXECUTE FUNCTION runner.workflow_history_row();

-- Enqueue the job that advances instance `id` at `run_at` and make it the current one.
CREATE OR REPLACE FUNCTION runner.workflow_wake(id text, run_at timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, runner
AS $$
DECLARE
    j bigint;
BEGIN
    INSERT INTO runner.jobs (queue, payload, run_at, max_attempts)
    VALUES ('workflows', jsonb_build_object('instance', workflow_wake.id),
            coalesce(workflow_wake.run_at, now()), 1000)
    RETURNING runner.jobs.id INTO j;
    UPDATE runner.workflow_instances i SET job_id = j, updated_at = now()
     WHERE i.id = workflow_wake.id;
    RETURN j;
END
$$;
REVOKE ALL ON FUNCTION runner.workflow_wake(text, timestamptz) FROM PUBLIC;

-- Start an instance of `workflow` from any transaction (it starts only if that transaction
-- commits). A caller-chosen id is an idempotency key: the same id again returns it and starts
-- nothing. NULL id: a random one. Returns the instance id.
CREATE OR REPLACE FUNCTION runner.workflow_create(workflow text, id text DEFAULT NULL,
                                                  params jsonb DEFAULT 'null'::jsonb)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, runner
AS $$
DECLARE
    iid text := coalesce(workflow_create.id, replace(gen_random_uuid()::text, '-', ''));
    existing text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM runner.workflows w WHERE w.name = workflow_create.workflow) THEN
        RAISE EXCEPTION 'unknown workflow %', workflow_create.workflow
            USING ERRCODE = 'no_data_found',
                  HINT = 'deploy a worker with --workflow BINDING=' || workflow_create.workflow;
    END IF;
    IF iid !~ '^[a-zA-Z0-9_][a-zA-Z0-9_-]{0,63}$' THEN
        RAISE EXCEPTION 'malformed workflow instance id %', iid
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'an id is 1 to 64 characters matching ^[a-zA-Z0-9_][a-zA-Z0-9-_]*$';
    END IF;
    INSERT INTO runner.workflow_instances (id, workflow, params)
    VALUES (iid, workflow_create.workflow, coalesce(workflow_create.params, 'null'::jsonb))
    ON CONFLICT ON CONSTRAINT workflow_instances_pkey DO NOTHING;
    IF FOUND THEN
        PERFORM runner.workflow_wake(iid);
        RETURN iid;
    END IF;
    SELECT i.workflow INTO existing FROM runner.workflow_instances i WHERE i.id = iid;
    IF existing IS DISTINCT FROM workflow_create.workflow THEN
        RAISE EXCEPTION 'workflow instance % belongs to workflow %, not %',
            iid, existing, workflow_create.workflow USING ERRCODE = 'unique_violation';
    END IF;
    RETURN iid;
END
$$;
REVOKE ALL ON FUNCTION runner.workflow_create(text, text, jsonb) FROM PUBLIC;

-- Send an event to instance `id` from any transaction. The event is kept in the inbox until a
-- waitForEvent of its type takes it; a waiting instance is woken at once. Returns the event id.
CREATE OR REPLACE FUNCTION runner.workflow_send_event(id text, type text,
                                                      payload jsonb DEFAULT 'null'::jsonb)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, runner
AS $$
DECLARE
    st text;
    ev bigint;
BEGIN
    -- The row lock orders this against a run recording its wait (see the runner's engine).
    SELECT i.status INTO st FROM runner.workflow_instances i
     WHERE i.id = workflow_send_event.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown workflow instance %', workflow_send_event.id
            USING ERRCODE = 'no_data_found';
    END IF;
    IF st IN ('complete', 'errored', 'terminated') THEN
        RAISE EXCEPTION 'workflow instance % is %: it takes no more events', workflow_send_event.id, st
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO runner.workflow_events (instance_id, type, payload)
    VALUES (workflow_send_event.id, workflow_send_event.type,
            coalesce(workflow_send_event.payload, 'null'::jsonb))
    RETURNING runner.workflow_events.id INTO ev;
    IF st = 'waiting' AND EXISTS (
        SELECT 1 FROM runner.workflow_steps s
         WHERE s.instance_id = workflow_send_event.id AND s.kind = 'event'
           AND s.status = 'waiting' AND s.event_type = workflow_send_event.type) THEN
        PERFORM runner.workflow_wake(workflow_send_event.id);
    END IF;
    RETURN ev;
END
$$;
REVOKE ALL ON FUNCTION runner.workflow_send_event(text, text, jsonb) FROM PUBLIC;

-- Bind workflows to a worker (after runner.deploy, in its transaction): `workflows` maps each
-- binding name to an exported class, which names the workflow. The worker's other bindings go;
-- a name another worker holds is refused. Touches the worker so every replica reloads it.
CREATE OR REPLACE FUNCTION runner.deploy_workflows(worker text, workflows jsonb DEFAULT '{}'::jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, runner
AS $$
DECLARE
    b text;
    c text;
    owner text;
BEGIN
    DELETE FROM runner.workflows w WHERE w.worker = deploy_workflows.worker
       AND NOT EXISTS (SELECT 1 FROM jsonb_each_text(coalesce(deploy_workflows.workflows, '{}'))
                        AS x(k, v) WHERE x.k = w.binding AND x.v = w.name);
    FOR b, c IN SELECT k, v FROM jsonb_each_text(coalesce(deploy_workflows.workflows, '{}')) AS x(k, v) LOOP
        SELECT w.worker INTO owner FROM runner.workflows w WHERE w.name = c;
        IF owner IS NOT NULL AND owner <> deploy_workflows.worker THEN
            RAISE EXCEPTION 'workflow % is bound by worker %', c, owner
                USING ERRCODE = 'unique_violation',
                      HINT = 'a workflow is named after its class: rename the class, or remove worker ' || owner;
        END IF;
        INSERT INTO runner.workflows (name, worker, binding)
        VALUES (c, deploy_workflows.worker, b)
        ON CONFLICT ON CONSTRAINT workflows_pkey DO UPDATE SET binding = excluded.binding;
    END LOOP;
    UPDATE runner.workers w SET updated_at = now() WHERE w.name = deploy_workflows.worker;
END
$$;
