-- Rows of the newer reasons do not fit the older rule: they are removed with it.
DELETE FROM node_sessions WHERE refusal IN ('peer_id_in_use', 'peer_id_not_allowed', 'wrong_genesis');
ALTER TABLE node_sessions DROP CONSTRAINT node_sessions_refusal_check;
ALTER TABLE node_sessions ADD CONSTRAINT node_sessions_refusal_check
    CHECK (refusal IN ('unsupported_version', 'malformed'));
