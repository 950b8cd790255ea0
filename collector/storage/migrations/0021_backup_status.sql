-- Per-server backup summary, kept up to date on every stored backup and reported run,
-- so a fleet page reads one row per server instead of grouping all run history
-- (400 days of daily runs x 10,000 servers = 4 million rows).
CREATE TABLE backup_status (
    server_id TEXT PRIMARY KEY,
    last_stored_at DOUBLE PRECISION,
    last_ok_at DOUBLE PRECISION,
    last_failed_at DOUBLE PRECISION,
    last_failed_reason TEXT,
    updated_at DOUBLE PRECISION NOT NULL
);

INSERT INTO backup_status (server_id, updated_at)
SELECT server_id, 0 FROM backups UNION SELECT server_id, 0 FROM backup_runs;

UPDATE backup_status SET
    last_stored_at = (SELECT MAX(b.stored_at) FROM backups b
                      WHERE b.server_id = backup_status.server_id AND b.status <> 'pruning'),
    last_ok_at = (SELECT MAX(r.finished_at) FROM backup_runs r
                  WHERE r.server_id = backup_status.server_id
                  AND r.outcome IN ('ok', 'unchanged')),
    last_failed_at = (SELECT MAX(r.finished_at) FROM backup_runs r
                      WHERE r.server_id = backup_status.server_id AND r.outcome = 'failed'),
    last_failed_reason = (SELECT r.reason FROM backup_runs r
                          WHERE r.server_id = backup_status.server_id AND r.outcome = 'failed'
                          ORDER BY r.finished_at DESC LIMIT 1);
