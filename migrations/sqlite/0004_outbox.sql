-- The durable outbox: events for outside delivery (notifications, alerts), written in the
-- same transaction as the change that caused them and delivered by the worker later.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX outbox_pending ON outbox(delivered_at, next_attempt_at);
