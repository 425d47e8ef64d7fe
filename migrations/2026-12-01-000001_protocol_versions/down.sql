-- Back to version 0 with GP 0.7 only. Refused-handshake sessions have no node and are removed;
-- nodes whose parameters lacked a core or validator count get 0, as the old NOT NULL needs.
DROP TABLE session_undefined_events;
DROP INDEX node_sessions_refused;
DELETE FROM node_sessions WHERE node_id IS NULL;
ALTER TABLE node_sessions
    ALTER COLUMN node_id SET NOT NULL,
    DROP COLUMN claimed_implementation,
    DROP COLUMN claimed_node_id,
    DROP COLUMN refusal,
    DROP COLUMN params_layout,
    DROP COLUMN gp_version,
    DROP COLUMN protocol_version;
UPDATE nodes SET jam_params = COALESCE(jam_params, '{}'::jsonb),
                 core_count = COALESCE(core_count, 0),
                 validator_count = COALESCE(validator_count, 0);
ALTER TABLE nodes
    ALTER COLUMN validator_count SET NOT NULL,
    ALTER COLUMN core_count SET NOT NULL,
    ALTER COLUMN jam_params SET NOT NULL,
    DROP COLUMN jam_params_raw,
    DROP COLUMN params_layout,
    DROP COLUMN protocol_version;
