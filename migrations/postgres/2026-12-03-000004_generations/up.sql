-- AI generations: the conversation a task belongs to (the newest running
-- task of a chat is what a resuming chat client follows), and the last
-- producer sequence number accepted (a retried delta is ignored).
ALTER TABLE tasks ADD COLUMN chat_id TEXT;
ALTER TABLE tasks ADD COLUMN last_seq BIGINT;
CREATE INDEX tasks_chat ON tasks (chat_id, created_at_ms) WHERE chat_id IS NOT NULL;
