DROP INDEX event_rows_by_type;
DROP INDEX event_stats_hourly_by_hour;
DROP TABLE event_stats_minute;
