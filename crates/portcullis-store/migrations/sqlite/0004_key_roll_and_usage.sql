-- Key roll: the previous secret keeps working until previous_expires_at.
ALTER TABLE api_keys ADD COLUMN previous_digest TEXT;
ALTER TABLE api_keys ADD COLUMN previous_expires_at BIGINT;
CREATE UNIQUE INDEX api_keys_previous_digest ON api_keys (previous_digest);

-- Usage analytics: verification outcomes counted per key, per minute.
CREATE TABLE key_usage (
    key_id       TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (key_id, bucket_start, outcome)
);
CREATE INDEX key_usage_bucket ON key_usage (bucket_start);
