-- Admin API tokens, keyspaces and API keys. Portable SQL (SQLite and PostgreSQL).

CREATE TABLE admin_tokens (
    id         TEXT PRIMARY KEY,
    digest     TEXT NOT NULL UNIQUE,
    hint       TEXT NOT NULL,
    name       TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE keyspaces (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    prefix         TEXT NOT NULL UNIQUE,
    scopes         TEXT NOT NULL,
    default_scopes TEXT NOT NULL,
    rate_limit     TEXT,
    default_ttl    BIGINT,
    max_ttl        BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    keyspace_id  TEXT NOT NULL REFERENCES keyspaces (id),
    digest       TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    owner        TEXT NOT NULL,
    name         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    meta         TEXT NOT NULL,
    remaining    BIGINT CHECK (remaining IS NULL OR remaining >= 0),
    rate_limit   TEXT,
    allow_ips    TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_keyspace_owner ON api_keys (keyspace_id, owner);
CREATE INDEX api_keys_owner ON api_keys (owner);
