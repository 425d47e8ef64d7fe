-- Fails on a row whose JSON holds a \u0000 escape (json takes it, jsonb does not); TART never
-- writes one (NUL in node text is stored as U+FFFD).
ALTER TABLE events ALTER COLUMN data TYPE JSONB USING data::jsonb;
CREATE UNIQUE INDEX events_session_event_id ON events (session_id, event_id, created_at)
    WHERE event_type <> 0;
DROP INDEX events_node_recent;
CREATE INDEX events_node_recent ON events (node_id, id DESC);
ALTER TABLE events DROP COLUMN node_key;
