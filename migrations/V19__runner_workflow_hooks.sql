-- runner: hooks for durable workflows (issue 18, `step.createHook`). Idempotent.
--
-- A hook is a step of kind 'hook' whose output is `{"token": ...}`, and a row of
-- runner.workflow_hooks (created in V18) holding its token: 64 hex digits from two
-- gen_random_uuid() calls (PostgreSQL's strong random source), unguessable. Each POST to the
-- hook's URL delivers one payload as an event of type `hook:<token>` into the instance's inbox
-- (kept if it comes early); each `hook.wait()` takes the next one.
ALTER TABLE runner.workflow_steps DROP CONSTRAINT IF EXISTS workflow_steps_kind_check;
ALTER TABLE runner.workflow_steps ADD CONSTRAINT workflow_steps_kind_check
    CHECK (kind IN ('do', 'sleep', 'event', 'hook'));
