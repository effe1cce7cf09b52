-- The producer sequence number of the last delta a `text` event carries,
-- so a task's last accepted `seq` survives a restart although its row is
-- not rewritten for every text write.
ALTER TABLE events ADD COLUMN seq BIGINT;
