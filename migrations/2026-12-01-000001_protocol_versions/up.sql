-- Telemetry protocol versions 0 and 1, and the GP 0.7 and GP 0.8 layouts of the JAM Parameters
-- (docs/PROTOCOL.md). Rows written before this migration came from version-0 nodes with GP 0.7
-- parameters, the only kind TART accepted then.

-- A node's row says what it spoke on its latest connection. A GP 0.8 node has no validator
-- count (V left the parameters), and a node whose parameters fit no known layout has neither
-- named constants nor a trusted core count: those columns are NULL then, never made up.
-- jam_params_raw keeps the blob as sent, so it can be read again later (NULL for rows written
-- before this migration).
ALTER TABLE nodes
    ADD COLUMN protocol_version SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN params_layout TEXT NOT NULL DEFAULT 'gp-0.7'
        CHECK (params_layout IN ('gp-0.7', 'gp-0.8', 'unknown')),
    ADD COLUMN jam_params_raw BYTEA,
    ALTER COLUMN jam_params DROP NOT NULL,
    ALTER COLUMN core_count DROP NOT NULL,
    ALTER COLUMN validator_count DROP NOT NULL;
ALTER TABLE nodes
    ALTER COLUMN protocol_version DROP DEFAULT,
    ALTER COLUMN params_layout DROP DEFAULT;

-- Each session records what its handshake said. A refused handshake is a session too: it has
-- `refusal` (why, as the metric label), `disconnect_reason` (the whole message) and no node row,
-- so node_id is NULL and the Peer ID and implementation it claimed, when they could be read,
-- are kept beside it.
-- Existing sessions were version 0 with GP 0.7 parameters: the defaults say so without rewriting
-- the table (a constant default is stored once), and are dropped for the rows to come.
ALTER TABLE node_sessions
    ADD COLUMN protocol_version SMALLINT DEFAULT 0,
    ADD COLUMN gp_version TEXT,
    ADD COLUMN params_layout TEXT DEFAULT 'gp-0.7'
        CHECK (params_layout IN ('gp-0.7', 'gp-0.8', 'unknown')),
    ADD COLUMN refusal TEXT CHECK (refusal IN ('unsupported_version', 'malformed')),
    ADD COLUMN claimed_node_id TEXT,
    ADD COLUMN claimed_implementation TEXT,
    ALTER COLUMN node_id DROP NOT NULL;
ALTER TABLE node_sessions
    ALTER COLUMN protocol_version DROP DEFAULT,
    ALTER COLUMN params_layout DROP DEFAULT;
CREATE INDEX node_sessions_refused ON node_sessions (connected_at DESC) WHERE refusal IS NOT NULL;

-- Event discriminators the spec does not define, counted per session: the events themselves
-- are stored with their raw bytes like any other; this says at a glance what a node sends that
-- JIP-3 does not have.
CREATE TABLE session_undefined_events (
    session_id    BIGINT NOT NULL,
    discriminator SMALLINT NOT NULL,
    node_id       TEXT NOT NULL,
    event_count   BIGINT NOT NULL,
    PRIMARY KEY (session_id, discriminator)
);
CREATE INDEX session_undefined_events_by_node ON session_undefined_events (node_id);
