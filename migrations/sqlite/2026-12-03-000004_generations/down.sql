DROP INDEX tasks_chat;
ALTER TABLE tasks DROP COLUMN last_seq;
ALTER TABLE tasks DROP COLUMN chat_id;
