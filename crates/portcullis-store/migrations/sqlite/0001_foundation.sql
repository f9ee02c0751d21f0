-- Portable SQL: this file is written so that PostgreSQL accepts it unchanged
-- (a test applies it to PostgreSQL when PORTCULLIS_TEST_DATABASE_URL is set).
-- Times are BIGINT seconds since the epoch; lists are JSON text.

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    alg                TEXT NOT NULL,
    public_jwk         TEXT NOT NULL,
    private_key_sealed TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    created_at         BIGINT NOT NULL,
    activate_at        BIGINT NOT NULL,
    retired_at         BIGINT
);

CREATE TABLE clients (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    secret_digest    TEXT,
    secret_hint      TEXT,
    grant_types      TEXT NOT NULL,
    redirect_uris    TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    default_scopes   TEXT NOT NULL,
    audiences        TEXT NOT NULL,
    default_audience TEXT,
    token_format     TEXT NOT NULL CHECK (token_format IN ('jwt', 'opaque')),
    access_token_alg TEXT NOT NULL,
    access_token_ttl BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE opaque_tokens (
    id         TEXT PRIMARY KEY,
    digest     TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    audience   TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX opaque_tokens_client_id ON opaque_tokens (client_id);
CREATE INDEX opaque_tokens_expires_at ON opaque_tokens (expires_at);

CREATE TABLE revoked_jtis (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_jtis_expires_at ON revoked_jtis (expires_at);
