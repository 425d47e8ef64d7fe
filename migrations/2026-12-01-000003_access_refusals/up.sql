-- Handshakes the access rules refuse are recorded like the others: a session row with the reason.
ALTER TABLE node_sessions DROP CONSTRAINT node_sessions_refusal_check;
ALTER TABLE node_sessions ADD CONSTRAINT node_sessions_refusal_check CHECK (refusal IN (
    'unsupported_version', 'malformed', 'peer_id_in_use', 'peer_id_not_allowed', 'wrong_genesis'
));
