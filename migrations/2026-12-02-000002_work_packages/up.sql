-- Work-package journeys (README, "JAM views"), kept by the writer's work-package tracker as
-- events arrive and merged on conflict (earliest time wins, counts add), so several servers
-- may write the same rows and no query reads raw events.
--
-- One row per (work-package hash, node): when the node's submission (Work-package submission,
-- or being shared as a secondary guarantor) reached each stage, in the node's own clock.
-- `role` 1 primary, 2 secondary guarantor. Kept for `minute_stats_retention_days`.
CREATE TABLE work_package_sightings (
    first_at                TIMESTAMPTZ NOT NULL,
    submitted_at            TIMESTAMPTZ,
    received_at             TIMESTAMPTZ,
    authorized_at           TIMESTAMPTZ,
    refined_at              TIMESTAMPTZ,
    report_built_at         TIMESTAMPTZ,
    guarantee_built_at      TIMESTAMPTZ,
    distributed_at          TIMESTAMPTZ,
    failed_at               TIMESTAMPTZ,
    refine_gas              BIGINT NOT NULL DEFAULT 0,
    refine_ns               BIGINT NOT NULL DEFAULT 0,
    node_key                INTEGER NOT NULL,
    core                    INTEGER NOT NULL,
    shares_failed           INTEGER NOT NULL DEFAULT 0,
    guarantees_sent         INTEGER NOT NULL DEFAULT 0,
    guarantee_send_failures INTEGER NOT NULL DEFAULT 0,
    role                    SMALLINT NOT NULL,
    duplicate               BOOLEAN NOT NULL DEFAULT false,
    failure_reason          TEXT,
    report_hash             BYTEA,
    hash                    BYTEA NOT NULL,
    PRIMARY KEY (hash, node_key)
);
CREATE INDEX work_package_sightings_by_time ON work_package_sightings (first_at);

-- Guarantees received (Guarantee received) of the work-reports TART knows (one a tracked
-- package's guarantors built), per receiving node: how fast a guarantee reaches the validators.
CREATE TABLE guarantee_receipts (
    received_at TIMESTAMPTZ NOT NULL,
    node_key    INTEGER NOT NULL,
    report_hash BYTEA NOT NULL,
    PRIMARY KEY (report_hash, node_key)
);
CREATE INDEX guarantee_receipts_by_time ON guarantee_receipts (received_at);

-- Per work-package, summed up from its sightings and receipts whenever they change: each stage's
-- earliest time over its nodes, and the counts. Kept for `hourly_stats_retention_days`.
CREATE TABLE work_packages (
    first_at                TIMESTAMPTZ NOT NULL,
    received_at             TIMESTAMPTZ,
    authorized_at           TIMESTAMPTZ,
    refined_at              TIMESTAMPTZ,
    report_built_at         TIMESTAMPTZ,
    guarantee_built_at      TIMESTAMPTZ,
    distributed_at          TIMESTAMPTZ,
    failed_at               TIMESTAMPTZ,
    last_receipt_at         TIMESTAMPTZ,
    refine_gas              BIGINT NOT NULL,
    refine_ns               BIGINT NOT NULL,
    core                    INTEGER NOT NULL,
    nodes                   INTEGER NOT NULL,
    duplicates              INTEGER NOT NULL,
    guarantees_built        INTEGER NOT NULL,
    guarantees_sent         INTEGER NOT NULL,
    guarantee_send_failures INTEGER NOT NULL,
    receivers               INTEGER NOT NULL,
    failure_reason          TEXT,
    report_hash             BYTEA,
    hash                    BYTEA PRIMARY KEY
);
CREATE INDEX work_packages_by_time ON work_packages (first_at);
CREATE INDEX work_packages_by_core ON work_packages (core, first_at);

-- Packages that reached each stage, per minute (of the stage's first time on any node) and
-- core: the funnel and its time series. `stage`: 1 received, 2 authorized, 3 refined, 4 report
-- built, 5 guarantee built, 6 distributed, 7 failed. Counted by the tracker that first saw the
-- package reach the stage: a package whose guarantors report to two servers counts on both.
-- Refines and their gas and time per minute and core ride along (stage 3). Minute tier.
CREATE TABLE work_package_funnel_minute (
    minute     TIMESTAMPTZ NOT NULL,
    packages   BIGINT NOT NULL,
    refine_gas BIGINT NOT NULL DEFAULT 0,
    refine_ns  BIGINT NOT NULL DEFAULT 0,
    core       INTEGER NOT NULL,
    stage      SMALLINT NOT NULL,
    PRIMARY KEY (minute, core, stage)
);

-- Guarantees per hour, guarantor node and core: built, sent, failed to send. Hourly tier.
CREATE TABLE guarantee_counts_hourly (
    hour        TIMESTAMPTZ NOT NULL,
    built       INTEGER NOT NULL,
    sent        INTEGER NOT NULL,
    send_failed INTEGER NOT NULL,
    node_key    INTEGER NOT NULL,
    core        INTEGER NOT NULL,
    PRIMARY KEY (hour, node_key, core)
);

-- Guarantees per hour and receiving node, whatever their core: received, failed to receive,
-- discarded. Not per core: the next authors receive every core's guarantees, so that would be a
-- row per author and core (hundreds of thousands an hour at 1,024 nodes). Hourly tier.
CREATE TABLE guarantee_receiver_counts_hourly (
    hour           TIMESTAMPTZ NOT NULL,
    received       INTEGER NOT NULL,
    receive_failed INTEGER NOT NULL,
    discarded      INTEGER NOT NULL,
    node_key       INTEGER NOT NULL,
    PRIMARY KEY (hour, node_key)
);
