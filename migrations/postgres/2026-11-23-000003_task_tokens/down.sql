ALTER TABLE tasks DROP COLUMN last_token_at_ms;
ALTER TABLE tasks DROP COLUMN first_token_at_ms;
ALTER TABLE tasks DROP COLUMN task_type;
