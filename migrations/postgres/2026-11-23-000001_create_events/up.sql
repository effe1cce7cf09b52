CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    project_id TEXT,
    user_id TEXT,
    task_id TEXT,
    idempotency_key TEXT,
    trace_context TEXT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX events_created_at ON events (created_at_ms);
CREATE INDEX events_task ON events (task_id, id) WHERE task_id IS NOT NULL;
CREATE UNIQUE INDEX events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE broker_state (
    key TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
