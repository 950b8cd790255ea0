-- When the collector stored (and verified) each backup, kept after retention prunes the
-- backup itself: the contract checks and the monthly report count backup slots from
-- these, never from what an agent says it did.
CREATE TABLE backup_stored_times (
    server_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    stored_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (server_id, seq)
);
CREATE INDEX backup_stored_times_at ON backup_stored_times(stored_at);
INSERT INTO backup_stored_times (server_id, seq, stored_at)
    SELECT server_id, seq, stored_at FROM backups;
