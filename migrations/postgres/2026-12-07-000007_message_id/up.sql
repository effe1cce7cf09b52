-- The assistant message a task writes, when its producer names one: a
-- chat turn that continues a message (after a tool approval) names the
-- message it continues, and a chat resuming that turn is sent the earlier
-- tasks of the same message first (found through `tasks_chat`).
ALTER TABLE tasks ADD COLUMN message_id TEXT;
