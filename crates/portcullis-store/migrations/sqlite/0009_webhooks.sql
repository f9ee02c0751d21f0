-- Webhook subscriptions: which audit event types go to which URL. The signing
-- secret is sealed (AES-256-GCM under the master key), since signing needs it.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

-- The durable outbox: one row per (subscription, audit record), written in the
-- same transaction as the audit record, so a restart loses no event.
CREATE TABLE webhook_outbox (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    audit_seq BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    delivered_ms BIGINT,
    failed BOOLEAN NOT NULL,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_ms);

-- Every delivery attempt.
CREATE TABLE webhook_attempts (
    outbox_id TEXT NOT NULL REFERENCES webhook_outbox (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at_ms BIGINT NOT NULL,
    status INTEGER,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (outbox_id, attempt)
);
