CREATE INDEX events_task ON events (task_id, id) WHERE task_id IS NOT NULL;
DELETE FROM broker_state WHERE key = 'task_indexed_through';
DROP TABLE task_events;
