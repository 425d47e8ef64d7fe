-- Back to JSON rows: only what is still in `legacy_events` comes back; rows stored in wire form
-- since the upgrade cannot be turned into JSON by SQL and are dropped with `event_rows`.
DROP TABLE decoded_events;
DROP VIEW events;
DROP TABLE event_rows;
ALTER TABLE node_sessions DROP COLUMN core_count;
DROP TABLE node_keys;
ALTER INDEX legacy_events_node_recent RENAME TO events_node_recent;
ALTER TABLE legacy_events RENAME TO events;
