DROP TABLE failure_counts_hourly;
ALTER TABLE nodes RESET (fillfactor);
ALTER TABLE node_sessions RESET (fillfactor);
ALTER TABLE node_status RESET (fillfactor);
ALTER TABLE node_event_types RESET (fillfactor);
ALTER TABLE event_stats_hourly RESET (fillfactor);
ALTER TABLE session_clock_skew RESET (fillfactor);
CREATE INDEX nodes_listing ON nodes (is_connected DESC, last_seen_at DESC NULLS LAST);
DROP TABLE node_latest_slots;
