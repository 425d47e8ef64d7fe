-- Block propagation (README, "JAM views"): which node learned of which block when, kept by the
-- writer's block tracker as events arrive and merged on conflict (earliest time wins), so
-- several servers may write the same rows and no query reads raw events.
--
-- One row per (slot, header hash, node): several header hashes for a slot are a fork. Times are
-- the node's own (its events' JIP-3 timestamps). Kept for `minute_stats_retention_days`: at
-- 1,024 nodes and 6 s slots that is ~15 M rows a day.
CREATE TABLE block_sightings (
    slot           BIGINT NOT NULL,
    first_at       TIMESTAMPTZ NOT NULL,
    announced_at   TIMESTAMPTZ,
    importing_at   TIMESTAMPTZ,
    executed_at    TIMESTAMPTZ,
    best_at        TIMESTAMPTZ,
    finalized_at   TIMESTAMPTZ,
    authored_at    TIMESTAMPTZ,
    node_key       INTEGER NOT NULL,
    -- The discriminator of the failure event (44 verification, 46 execution), and its reason.
    failure        SMALLINT,
    failure_reason TEXT,
    header_hash    BYTEA NOT NULL,
    PRIMARY KEY (slot, header_hash, node_key)
);
CREATE INDEX block_sightings_by_time ON block_sightings (first_at);

-- Per block, summed up from its sightings whenever they change (one small GROUP BY over one
-- block's rows): what the slot list and the propagation series read. Delays are from the
-- author's Authored event (or, with no author connected to TART, from the first node that
-- learned of the block) to each other node's first sighting. Kept for
-- `hourly_stats_retention_days`.
CREATE TABLE slot_blocks (
    slot                BIGINT NOT NULL,
    first_at            TIMESTAMPTZ NOT NULL,
    authored_at         TIMESTAMPTZ,
    delay_p50_ms        DOUBLE PRECISION,
    delay_p90_ms        DOUBLE PRECISION,
    delay_max_ms        DOUBLE PRECISION,
    finalization_lag_ms DOUBLE PRECISION,
    author_key          INTEGER,
    nodes_reached       INTEGER NOT NULL,
    nodes_imported      INTEGER NOT NULL,
    nodes_finalized     INTEGER NOT NULL,
    import_failures     INTEGER NOT NULL,
    execution_failures  INTEGER NOT NULL,
    header_hash         BYTEA NOT NULL,
    PRIMARY KEY (slot, header_hash)
);
CREATE INDEX slot_blocks_by_time ON slot_blocks (first_at);

-- Slots whose author said Authoring failed: no block from it.
CREATE TABLE authoring_failures (
    slot     BIGINT NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    node_key INTEGER NOT NULL,
    reason   TEXT NOT NULL,
    PRIMARY KEY (slot, node_key)
);
CREATE INDEX authoring_failures_by_time ON authoring_failures (at);
