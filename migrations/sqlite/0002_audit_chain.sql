-- Tamper-evident audit: every entry carries the hash of the one before it.
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN hash TEXT NOT NULL DEFAULT '';

-- The head of the chain: one row, locked by each writer, so concurrent entries never fork.
CREATE TABLE audit_head (
    id          INTEGER PRIMARY KEY,
    last_id     INTEGER NOT NULL,
    last_hash   TEXT NOT NULL
);
INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '');
