-- Where a personal access token was last used from (the direct peer, or the client
-- address a trusted proxy reports once forward-auth lands).
ALTER TABLE personal_access_tokens ADD COLUMN last_used_ip TEXT;
