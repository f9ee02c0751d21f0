-- `seq BIGINT PRIMARY KEY` is not a rowid alias in SQLite (only the exact type name
-- `INTEGER` is): the table kept a hidden rowid of its own plus a separate unique
-- index on `seq`, one more B-tree written for every record. Rebuilt here with
-- `seq INTEGER PRIMARY KEY` (SQLite's rowid: 64 bits; PostgreSQL reads it as
-- BIGINT through `postgres_migration_sql`), so records are stored in `seq` order
-- and the chain head is the table's last row. Rows, values and the
-- other indexes are kept as they were; links are unchanged (they cover the values,
-- not the storage).
CREATE TABLE audit_events_new (
    seq INTEGER PRIMARY KEY,
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
INSERT INTO audit_events_new (seq, at_ms, kind, outcome, actor, subject, credential_id, client_id,
                              ip, user_agent, reason, details, prev_hash, hash)
    SELECT seq, at_ms, kind, outcome, actor, subject, credential_id, client_id,
           ip, user_agent, reason, details, prev_hash, hash
      FROM audit_events ORDER BY seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_at ON audit_events (at_ms);
CREATE INDEX audit_events_credential ON audit_events (credential_id, seq);
