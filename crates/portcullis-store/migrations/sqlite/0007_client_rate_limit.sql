-- A client's own rate limit (`N/period`) on the token endpoint and forward-auth;
-- NULL means the [ratelimit] defaults apply.
ALTER TABLE clients ADD COLUMN rate_limit TEXT;
