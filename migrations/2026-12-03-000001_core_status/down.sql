DROP TABLE core_status_minute;
