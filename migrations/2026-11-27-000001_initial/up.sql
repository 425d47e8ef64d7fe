-- TART's storage. Hot path: `events` only (one multi-row INSERT per batch). Everything derived
-- from events (node counters, session counters, hourly stats, latest status) is rolled up by the
-- DB writer about once a second, so concurrent batch writes never contend for the same rows.

-- Row ids (events, sessions) are minted in the application as (generation << 40) | counter, so an
-- event has its id before it is written (the WebSocket shows it first) and a retried write carries
-- the same id. Each server start takes a new generation.
CREATE SEQUENCE id_generation AS BIGINT START 1;

CREATE TABLE nodes (
    node_id                TEXT PRIMARY KEY CHECK (node_id ~ '^[0-9a-f]{64}$'),
    peer_id                BYTEA NOT NULL,
    implementation_name    TEXT NOT NULL,
    implementation_version TEXT NOT NULL,
    gp_version             TEXT NOT NULL,
    node_flags             BIGINT NOT NULL,
    note                   TEXT NOT NULL,
    genesis_hash           TEXT NOT NULL,
    jam_params             JSONB NOT NULL,
    core_count             INTEGER NOT NULL,
    validator_count        INTEGER NOT NULL,
    peer_address           JSONB NOT NULL,
    remote_address         TEXT,
    current_session_id     BIGINT,
    is_connected           BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen_at          TIMESTAMPTZ NOT NULL,
    connected_at           TIMESTAMPTZ,
    last_seen_at           TIMESTAMPTZ,
    disconnected_at        TIMESTAMPTZ,
    event_count            BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX nodes_listing ON nodes (is_connected DESC, last_seen_at DESC NULLS LAST);

CREATE TABLE node_sessions (
    session_id          BIGINT PRIMARY KEY,
    node_id             TEXT NOT NULL REFERENCES nodes (node_id),
    remote_address      TEXT,
    connected_at        TIMESTAMPTZ NOT NULL,
    disconnected_at     TIMESTAMPTZ,
    disconnect_reason   TEXT,
    events_received     BIGINT NOT NULL DEFAULT 0,
    events_stored       BIGINT NOT NULL DEFAULT 0,
    events_rate_limited BIGINT NOT NULL DEFAULT 0,
    decode_failures     BIGINT NOT NULL DEFAULT 0,
    events_dropped      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX node_sessions_by_node ON node_sessions (node_id, connected_at DESC);

-- Partitioned by receive time (set once when the frame is read, so a retry carries the same value).
-- Daily partitions are created ahead by the server; the default partition catches any row whose
-- day has none, so no row is ever rejected, and upkeep moves such rows into their day later.
CREATE TABLE events (
    id          BIGINT NOT NULL,
    node_id     TEXT NOT NULL,
    session_id  BIGINT NOT NULL,
    event_id    BIGINT NOT NULL,
    event_type  SMALLINT NOT NULL,
    timestamp   TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    data        JSONB NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
-- Dropped (type 0) rows are exempt: Dropped(0) legitimately shares its ID with the next event.
CREATE UNIQUE INDEX events_session_event_id ON events (session_id, event_id, created_at)
    WHERE event_type <> 0;
-- Serves "latest events of one node" (GET /api/nodes/{id}/events): newest ids first per node.
CREATE INDEX events_node_recent ON events (node_id, id DESC);
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Frames that did not decode, kept byte for byte with the error, for the operator.
CREATE TABLE decode_failures (
    id          BIGINT PRIMARY KEY,
    node_id     TEXT NOT NULL,
    session_id  BIGINT NOT NULL,
    event_id    BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    error       TEXT NOT NULL,
    raw         BYTEA NOT NULL
);
CREATE INDEX decode_failures_by_node ON decode_failures (node_id, id DESC);

-- One row per run of rate-limited events: nothing vanishes without a trace.
CREATE TABLE rate_limit_gaps (
    session_id       BIGINT NOT NULL,
    first_event_id   BIGINT NOT NULL,
    node_id          TEXT NOT NULL,
    last_event_id    BIGINT NOT NULL,
    first_timestamp  TIMESTAMPTZ NOT NULL,
    last_timestamp   TIMESTAMPTZ NOT NULL,
    event_count      BIGINT NOT NULL,
    PRIMARY KEY (session_id, first_event_id)
);

-- Latest Status event per node.
CREATE TABLE node_status (
    node_id     TEXT PRIMARY KEY,
    event_row   BIGINT NOT NULL,
    timestamp   TIMESTAMPTZ NOT NULL,
    data        JSONB NOT NULL
);

-- Best / finalized / authored blocks reported by each node (events 11, 12, 42).
CREATE TABLE blocks (
    event_row    BIGINT PRIMARY KEY,
    node_id      TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('best', 'finalized', 'authored')),
    slot         BIGINT,
    header_hash  TEXT,
    timestamp    TIMESTAMPTZ NOT NULL
);
CREATE INDEX blocks_by_kind ON blocks (kind, slot DESC);
CREATE INDEX blocks_by_node ON blocks (node_id, kind, event_row DESC);

CREATE TABLE event_stats_hourly (
    node_id     TEXT NOT NULL,
    event_type  SMALLINT NOT NULL,
    hour        TIMESTAMPTZ NOT NULL,
    event_count BIGINT NOT NULL,
    PRIMARY KEY (node_id, event_type, hour)
);

CREATE TABLE stats_cache (
    key         TEXT PRIMARY KEY,
    value       JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
