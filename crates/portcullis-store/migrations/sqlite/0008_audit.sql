-- The audit trail: append-only, each record linked to the previous one by an
-- HMAC chain (keyed from the master key). `seq` is assigned by the writer in the
-- same transaction that reads the chain head, so there are no gaps.
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor TEXT,
    subject TEXT,
    credential_id TEXT,
    client_id TEXT,
    ip TEXT,
    user_agent TEXT,
    reason TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at_ms);
CREATE INDEX audit_events_credential ON audit_events (credential_id, seq);

-- Where verification starts: the last record removed by retention (seq 0 and a
-- genesis hash before any pruning), sealed so it cannot be moved by hand. Every
-- append locks this row first, which serialises writers on SQLite and PostgreSQL.
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    pruned_at_ms BIGINT NOT NULL,
    seal TEXT NOT NULL
);
INSERT INTO audit_anchor (id, seq, hash, pruned_at_ms, seal) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0, '');
