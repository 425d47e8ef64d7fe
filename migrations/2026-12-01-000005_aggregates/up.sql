-- Aggregates kept as events arrive, so dashboards and time series never scan raw events
-- (README, "Storage"). Every figure is a sum that merges in the database: several servers may
-- write the same rows.
--
-- Events stored per minute, event type and node. Kept for `minute_stats_retention_days`; the
-- hourly table beside it (`event_stats_hourly`) for `hourly_stats_retention_days`, so history
-- outlives the raw events. Columns widest first (no padding); the key starts with the minute, so
-- a time range and the retention's delete are one index range.
CREATE TABLE event_stats_minute (
    minute      TIMESTAMPTZ NOT NULL,
    event_count BIGINT NOT NULL,
    node_key    INTEGER NOT NULL,
    event_type  SMALLINT NOT NULL,
    PRIMARY KEY (minute, event_type, node_key)
);

-- Time ranges of the hourly table, for its time series and its retention.
CREATE INDEX event_stats_hourly_by_hour ON event_stats_hourly (hour);

-- A node's refused handshakes (they have no node_id, only the id they claimed), for its sessions
-- in the API.
CREATE INDEX node_sessions_refused_by_claim ON node_sessions (claimed_node_id, session_id DESC)
    WHERE refusal IS NOT NULL;

-- Per node and event type, all time: how many events of it were stored and the minute of the
-- latest. Which types an implementation sends, and which never, is read from here (1,024 nodes
-- × the types they send: tens of thousands of rows, however long the history).
CREATE TABLE node_event_types (
    last_minute TIMESTAMPTZ NOT NULL,
    event_count BIGINT NOT NULL,
    node_key    INTEGER NOT NULL,
    event_type  SMALLINT NOT NULL,
    PRIMARY KEY (node_key, event_type)
);

-- Failure events' reasons (their Reason string, or the name of a discard reason) per hour, type
-- and node, counted as the events are stored: the most frequent reasons of /api/failures. Kept as
-- long as the hourly counts.
CREATE TABLE failure_reasons (
    hour        TIMESTAMPTZ NOT NULL,
    event_count BIGINT NOT NULL,
    node_key    INTEGER NOT NULL,
    event_type  SMALLINT NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (hour, event_type, node_key, reason)
);
