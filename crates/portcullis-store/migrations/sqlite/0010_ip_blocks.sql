-- Temporary denies of client networks (anomaly response or by hand). Expired rows
-- are ignored at once and purged by the cleanup job.
CREATE TABLE ip_blocks (
    network TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
