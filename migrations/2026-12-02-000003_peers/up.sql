-- Peer connections (README, "JAM views"), kept by the writer's peer tracker: each node's links
-- to its peers as its own events tell them (Connected in, Connected out via the Connecting out it
-- answers, Disconnected), so the graph is who said they are connected to whom. A link's state is
-- that of its newest event (by the node's clock); counts add. Peers are mapped to the nodes TART
-- knows by Peer ID when read. Kept for `hourly_stats_retention_days` after the last change.
CREATE TABLE peer_links (
    first_at    TIMESTAMPTZ NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL,
    connects    BIGINT NOT NULL,
    disconnects BIGINT NOT NULL,
    node_key    INTEGER NOT NULL,
    connected   BOOLEAN NOT NULL,
    peer_id     BYTEA NOT NULL,
    PRIMARY KEY (node_key, peer_id)
);
CREATE INDEX peer_links_by_change ON peer_links (changed_at);

-- Connects and disconnects per minute and node: churn over time. Minute tier.
CREATE TABLE peer_churn_minute (
    minute      TIMESTAMPTZ NOT NULL,
    connects    BIGINT NOT NULL,
    disconnects BIGINT NOT NULL,
    node_key    INTEGER NOT NULL,
    PRIMARY KEY (minute, node_key)
);
