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
