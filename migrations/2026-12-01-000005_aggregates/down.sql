DROP TABLE session_clock_skew;
DROP VIEW events;
CREATE VIEW events AS
SELECT e.id, k.node_id, e.session_id, e.event_id, e.event_type, e.timestamp, e.created_at,
       e.body, e.node_key
FROM event_rows e JOIN node_keys k ON k.node_key = e.node_key;
ALTER TABLE node_sessions DROP COLUMN dangling_references;
ALTER TABLE event_rows DROP COLUMN ref_id;
DROP TABLE failure_reasons;
DROP TABLE node_event_types;
DROP INDEX node_sessions_refused_by_claim;
DROP INDEX event_stats_hourly_by_hour;
DROP TABLE type_counts_minute;
DROP TABLE node_counts_minute;
DROP TABLE type_counts_hourly;
DROP TABLE node_counts_hourly;
