-- Scheduled work shared by several collector processes: a task's round runs in the
-- process holding its lease; last_round_at keeps the period across a takeover, rounds
-- counts them (whichever process ran them).
CREATE TABLE task_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL,
    last_round_at REAL,
    rounds INTEGER NOT NULL DEFAULT 0
);
