-- Each task's events, indexed in sorted batches instead of one scattered
-- index page per event (see src/store/sqlite_task_index.rs). The events
-- after `task_indexed_through` are not in it yet: they are found by
-- scanning the table from there.
CREATE TABLE task_events (
    task_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (task_id, id)
) WITHOUT ROWID;
INSERT INTO task_events (task_id, id)
    SELECT task_id, id FROM events WHERE task_id IS NOT NULL ORDER BY task_id, id;
INSERT OR REPLACE INTO broker_state (key, value)
    VALUES ('task_indexed_through', (SELECT coalesce(max(id), 0) FROM events));
DROP INDEX events_task;
