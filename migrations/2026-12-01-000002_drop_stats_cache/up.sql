-- Nothing ever read or wrote stats_cache: the API caches its stats snapshot in memory
-- (api/stats.rs), per process. Dropped so the schema shows only what TART uses.
DROP TABLE stats_cache;
