-- Aggregates kept as events arrive, so dashboards and time series never scan raw events
-- (README, "Storage"). Every figure is a sum that merges in the database: several servers may
-- write the same rows.
--
-- Events stored per minute and per hour, by event type and by node: what the time series and the
-- network's rate read. A minute of 1,024 nodes is ~60 rows by type and 1,024 by node (by type
-- and node it was ~40,000, and an hour of those took a second to sum). The minute tables are
-- kept for `minute_stats_retention_days`, the hourly ones (and `event_stats_hourly`, by node
-- and type) for `hourly_stats_retention_days`, so history outlives the raw events. Columns
-- widest first (no padding); keys start with the time, so a range and the retention's delete
-- are one index range.
CREATE TABLE type_counts_minute (
    minute      TIMESTAMPTZ NOT NULL,
    event_count BIGINT NOT NULL,
    event_type  SMALLINT NOT NULL,
    PRIMARY KEY (minute, event_type)
);
CREATE TABLE node_counts_minute (
    minute      TIMESTAMPTZ NOT NULL,
    event_count BIGINT NOT NULL,
    node_key    INTEGER NOT NULL,
    PRIMARY KEY (minute, node_key)
);
CREATE TABLE type_counts_hourly (
    hour        TIMESTAMPTZ NOT NULL,
    event_count BIGINT NOT NULL,
    event_type  SMALLINT NOT NULL,
    PRIMARY KEY (hour, event_type)
);
CREATE TABLE node_counts_hourly (
    hour        TIMESTAMPTZ NOT NULL,
    event_count BIGINT NOT NULL,
    node_key    INTEGER NOT NULL,
    PRIMARY KEY (hour, node_key)
);

-- Time ranges of the hourly table by node and type, for the failures (a few types of every
-- node in a range) and its retention.
CREATE INDEX event_stats_hourly_by_hour ON event_stats_hourly (hour, event_type);

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

-- Linked events: where each event's Event ID field points, resolved at ingest within its
-- connection: NULL (no such field), 0 (dangling: nothing it may point at was sent on the
-- connection, or it is older than what the connection remembers), or the row id it points at.
-- No index: the events that refer to an event are found among the next events of its node
-- (README, "Reading the data").
ALTER TABLE event_rows ADD COLUMN ref_id BIGINT;
ALTER TABLE node_sessions ADD COLUMN dangling_references BIGINT NOT NULL DEFAULT 0;
CREATE OR REPLACE VIEW events AS
SELECT e.id, k.node_id, e.session_id, e.event_id, e.event_type, e.timestamp, e.created_at,
       e.body, e.node_key, e.ref_id
FROM event_rows e JOIN node_keys k ON k.node_key = e.node_key;

-- Clock skew per session (receive time − event time, in power-of-two buckets of milliseconds,
-- signed; see `jip3::skew`), counted per event received: the implementation report's p50/p99.
CREATE TABLE session_clock_skew (
    session_id  BIGINT NOT NULL,
    bucket      SMALLINT NOT NULL,
    node_id     TEXT NOT NULL,
    event_count BIGINT NOT NULL,
    PRIMARY KEY (session_id, bucket)
);
CREATE INDEX session_clock_skew_by_node ON session_clock_skew (node_id);
