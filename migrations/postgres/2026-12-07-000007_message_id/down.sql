ALTER TABLE tasks DROP COLUMN message_id;
