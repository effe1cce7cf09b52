-- What kind of work a task is (labels its metrics), and when its producer
-- wrote the first and the latest token (time to first token, gaps).
ALTER TABLE tasks ADD COLUMN task_type TEXT;
ALTER TABLE tasks ADD COLUMN first_token_at_ms BIGINT;
ALTER TABLE tasks ADD COLUMN last_token_at_ms BIGINT;
