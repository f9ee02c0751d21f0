-- Browser sign-in, OAuth authorization code / refresh / password grants, OpenID
-- Connect and TOTP. Portable SQL (PostgreSQL accepts it unchanged).

-- Credentials on users: an Argon2id PHC string, never the password; the TOTP seed
-- sealed under the master key; lockout state for brute-force defence.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN mfa_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN totp_secret_sealed TEXT;
ALTER TABLE users ADD COLUMN totp_confirmed_at BIGINT;
-- The last TOTP time step accepted: a code is good once (RFC 6238 §5.2).
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

-- Per-client browser settings.
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN refresh_token_ttl BIGINT NOT NULL DEFAULT 1209600;
ALTER TABLE clients ADD COLUMN refresh_token_max_ttl BIGINT NOT NULL DEFAULT 7776000;
ALTER TABLE clients ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN first_party BOOLEAN NOT NULL DEFAULT FALSE;

-- Browser sessions, by keyed digest of the cookie value.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    digest       TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr          TEXT NOT NULL,
    auth_time    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Authorization codes: single use (used_at), bound to client, redirect URI and PKCE.
CREATE TABLE authorization_codes (
    id             TEXT PRIMARY KEY,
    digest         TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id     TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    auth_time      BIGINT NOT NULL,
    amr            TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);

-- Refresh tokens: one row per token; a family is every token rotated from one
-- grant (its id is the authorization code's, or the first token's).
CREATE TABLE refresh_tokens (
    id                TEXT PRIMARY KEY,
    digest            TEXT NOT NULL UNIQUE,
    family_id         TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id        TEXT,
    scope             TEXT NOT NULL,
    auth_time         BIGINT NOT NULL,
    amr               TEXT NOT NULL,
    issued_at         BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    family_expires_at BIGINT NOT NULL,
    used_at           BIGINT,
    revoked_at        BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Access tokens issued to users, by grant family: what a replayed code, a reused
-- refresh token, a logout or a password change must revoke.
CREATE TABLE grant_tokens (
    jti        TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    session_id TEXT,
    client_id  TEXT NOT NULL,
    format     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX grant_tokens_family ON grant_tokens (family_id);
CREATE INDEX grant_tokens_user ON grant_tokens (user_id);
CREATE INDEX grant_tokens_session ON grant_tokens (session_id);

-- Remembered consent: the scopes a user granted a client.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- TOTP recovery codes, by keyed digest; each is good once.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest  TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, digest)
);
