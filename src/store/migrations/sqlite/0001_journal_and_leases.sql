-- The audit journal: every step of every rotation, never a secret (token ids and
-- fingerprints only).
CREATE TABLE journal (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms         BIGINT  NOT NULL,
    binding       TEXT    NOT NULL,
    rotation      TEXT,
    step          TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,
    reason        TEXT    NOT NULL DEFAULT '',
    token_id      BIGINT,
    fingerprint   TEXT
);
CREATE INDEX journal_by_binding ON journal (binding, id);

-- One rotation in flight per binding, across processes: a lease with an expiry, so that a
-- holder that died frees it by itself.
CREATE TABLE leases (
    binding       TEXT    PRIMARY KEY,
    holder        TEXT    NOT NULL,
    expires_at_ms BIGINT  NOT NULL
);
