-- Scheduled work shared by several collector processes: a task's round runs in the
-- process holding its lease; last_round_at keeps the period across a takeover.
CREATE TABLE task_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL,
    last_round_at REAL
);
