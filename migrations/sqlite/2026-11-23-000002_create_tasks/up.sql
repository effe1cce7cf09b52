-- Long-running tasks (AI generations, jobs) whose progress and text stream
-- to browsers. Their events live in `events` with `task_id` set.
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    stage TEXT,
    message TEXT,
    result TEXT,
    error TEXT,
    project_id TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX tasks_running ON tasks (status, updated_at_ms);
