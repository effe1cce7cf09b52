DROP TABLE broker_state;
DROP TABLE events;
