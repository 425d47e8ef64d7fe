-- Each node's newest best and finalized block (event row and slot), kept by the writer's
-- rollup, so the network overview, the node list and the block stats read one row per node
-- instead of probing `blocks` twice per node. The newest row wins on conflict, so several
-- servers may write it.
CREATE TABLE node_latest_slots (
    node_id        TEXT PRIMARY KEY,
    best_row       BIGINT,
    best_slot      BIGINT,
    finalized_row  BIGINT,
    finalized_slot BIGINT
);

INSERT INTO node_latest_slots (node_id, best_row, best_slot, finalized_row, finalized_slot)
SELECT n.node_id, b.event_row, b.slot, f.event_row, f.slot
FROM nodes n
LEFT JOIN LATERAL (SELECT event_row, slot FROM blocks
                   WHERE node_id = n.node_id AND kind = 'best'
                   ORDER BY event_row DESC LIMIT 1) b ON true
LEFT JOIN LATERAL (SELECT event_row, slot FROM blocks
                   WHERE node_id = n.node_id AND kind = 'finalized'
                   ORDER BY event_row DESC LIMIT 1) f ON true
WHERE b.event_row IS NOT NULL OR f.event_row IS NOT NULL;

-- The bookkeeping tables are rewritten every rollup (each node's row every second). An update
-- that changes no indexed column and finds room on its page is HOT: its dead version is pruned
-- on the page, without vacuum. So leave room on each page, and keep `last_seen_at` (updated
-- every second) out of the node list's index: sorting a few thousand node rows costs less than
-- a new index entry per node per second and the bloat it left.
DROP INDEX nodes_listing;
ALTER TABLE nodes SET (fillfactor = 50);
ALTER TABLE node_sessions SET (fillfactor = 50);
ALTER TABLE node_status SET (fillfactor = 50);
ALTER TABLE node_latest_slots SET (fillfactor = 50);
ALTER TABLE node_event_types SET (fillfactor = 70);
ALTER TABLE event_stats_hourly SET (fillfactor = 70);
ALTER TABLE session_clock_skew SET (fillfactor = 70);

-- Failure events and the attempts they answer, per hour, type and node (a 4-byte key, not the
-- 64-character id): what `/api/failures` reads, a third of the hourly counts and narrow rows.
-- Written by the rollup with the other counts, kept `hourly_stats_retention_days`.
CREATE TABLE failure_counts_hourly (
    hour        TIMESTAMPTZ NOT NULL,
    event_type  SMALLINT NOT NULL,
    node_key    INTEGER NOT NULL,
    event_count BIGINT NOT NULL,
    PRIMARY KEY (hour, event_type, node_key)
) WITH (fillfactor = 70);

-- The types are `jip3::failures::COUNTED_TYPES` (a unit test checks this copy).
INSERT INTO failure_counts_hourly (hour, event_type, node_key, event_count)
SELECT s.hour, s.event_type, k.node_key, s.event_count
FROM event_stats_hourly s JOIN node_keys k ON k.node_id = s.node_id
WHERE s.event_type = ANY ('{20, 21, 22, 24, 25, 28, 40, 41, 43, 44, 46, 63, 64, 65, 80, 81, 83,
    90, 91, 92, 99, 106, 107, 110, 111, 113, 120, 121, 122, 126, 127, 130, 140, 141, 142, 148,
    149, 150, 162, 163, 164, 168, 169, 171, 173, 174, 175, 190, 193, 194, 195, 199}'::int2[]);
