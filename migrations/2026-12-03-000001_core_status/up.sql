-- What the nodes' Status events say of each core's guarantees over time (README, "JAM views"):
-- per minute (of the nodes' clocks) and core, the Status reports sampled (each node's latest
-- Status at each rollup, about once a second) and the guarantees they counted for the core, so
-- guarantees / samples is the mean a node reported. Minute tier.
CREATE TABLE core_status_minute (
    minute     TIMESTAMPTZ NOT NULL,
    samples    BIGINT NOT NULL,
    guarantees BIGINT NOT NULL,
    core       INTEGER NOT NULL,
    PRIMARY KEY (minute, core)
);
