-- Events and their deliveries. An outbox row is either an event (kind = the event's kind,
-- payload = the event) or one message to one recipient on one channel (kind `email` or
-- `telegram`), which the worker makes from the event. Workers claim rows for a lease;
-- a row ends `delivered`, or `dead` after its last attempt, until an administrator retries it.
ALTER TABLE outbox ADD COLUMN dedup_key TEXT;
ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
UPDATE outbox SET status = 'delivered' WHERE delivered_at IS NOT NULL;
CREATE UNIQUE INDEX outbox_dedup ON outbox(dedup_key);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);

-- Where a user hears from the service: a linked Telegram chat, the language of messages, and
-- the channels the user chose (both on by default; Telegram needs a linked chat).
ALTER TABLE users ADD COLUMN telegram_chat_id TEXT;
ALTER TABLE users ADD COLUMN lang TEXT NOT NULL DEFAULT 'ru';
ALTER TABLE users ADD COLUMN notify_email INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN notify_telegram INTEGER NOT NULL DEFAULT 1;

-- Periodic jobs (the SLA sweep) run once however many instances run: each run takes the
-- job's lease first.
CREATE TABLE job_leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    until   TEXT NOT NULL
);
