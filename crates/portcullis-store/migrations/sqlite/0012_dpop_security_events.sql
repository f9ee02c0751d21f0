-- DPoP (RFC 9449): the key thumbprint (`cnf.jkt`) an opaque access token or a
-- refresh token is bound to, and clients that must present a proof.
ALTER TABLE opaque_tokens ADD COLUMN jkt TEXT;
ALTER TABLE refresh_tokens ADD COLUMN jkt TEXT;
ALTER TABLE clients ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;

-- The security event feed (`GET /api/v1/events/stream`): what offline verifiers
-- must learn (a JWT revoked, a key revoked, a session ended, a signing key
-- retired). `seq` comes from the head row, bumped in the same transaction, so ids
-- only grow even when old events are purged; a revoked JWT's event is written in
-- the transaction that puts it on the deny list, so none is lost. Events are kept
-- until `expires_at` (a revoked JWT: its own expiry), then purged.
CREATE TABLE security_events (
    seq        BIGINT PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    details    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX security_events_expires_at ON security_events (expires_at);

CREATE TABLE security_event_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO security_event_head (id, seq) VALUES (1, 0);
