-- A single counter bumped in the same transaction as every change to clients, so
-- a running server can cache clients and notice changes made by other processes
-- (the CLI, other nodes) with one cheap read per poll instead of one per request.
CREATE TABLE change_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_counter (id, seq) VALUES (1, 0);
