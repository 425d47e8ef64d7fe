DROP TABLE failure_reasons;
DROP TABLE node_event_types;
DROP INDEX node_sessions_refused_by_claim;
DROP INDEX event_stats_hourly_by_hour;
DROP TABLE event_stats_minute;
