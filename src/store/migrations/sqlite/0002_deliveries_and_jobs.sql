-- Webhook deliveries seen, by their dedupe key: a redelivery finds its key here and has no
-- second effect. Timer slots use the same table, so that replicas enqueue one pass per slot.
CREATE TABLE deliveries (
    dedupe_key     TEXT    PRIMARY KEY,
    received_at_ms BIGINT  NOT NULL,
    event          TEXT    NOT NULL
);

-- The work queue: a job is claimed by one worker at a time (locked_by, locked_until_ms), retried
-- with backoff, and ends done or dead.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_run_ms     BIGINT  NOT NULL,
    locked_by       TEXT,
    locked_until_ms BIGINT,
    last_error      TEXT,
    created_ms      BIGINT  NOT NULL,
    updated_ms      BIGINT  NOT NULL
);
CREATE INDEX jobs_runnable ON jobs (status, next_run_ms);
