-- Encrypted configuration backups: catalog, uploads in progress, run outcomes,
-- recovery recipients (public halves only) and policies. See docs/backup-storage.md.
-- Times are epoch seconds (UTC). DOUBLE PRECISION and BIGINT are spelled out because
-- PostgreSQL's REAL is 4 bytes (128 s resolution at today's epoch) and INTEGER is 4
-- bytes (a 4 GiB backup overflows it); SQLite reads both as REAL / INTEGER affinity.

-- One row per stored backup: a verified full backup (the age object and its envelope
-- are in the object store) or an "unchanged since base_seq" record. A partial upload is
-- never here; it lives in backup_uploads until it is complete and verified.
-- status: verified | corrupt (the integrity pass found the object damaged or missing)
--         | pruning (retention chose to remove it; objects are deleted, then the row).
CREATE TABLE backups (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    stored_at DOUBLE PRECISION NOT NULL,
    size BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT,
    base_seq BIGINT,
    content_digest TEXT,
    envelope TEXT NOT NULL,
    object_key TEXT,
    envelope_key TEXT,
    verified_at DOUBLE PRECISION,
    checked_at DOUBLE PRECISION,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    UNIQUE (server_id, seq)
);
CREATE INDEX backups_status ON backups(status);

-- The highest sequence number ever accepted per server: survives pruning, so an old
-- (validly signed) backup can never be replayed after its row is gone.
CREATE TABLE backup_sequences (
    server_id TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

-- Uploads in progress; the bytes are staged in <data>/uploads/<id>.part.
-- received = bytes fsynced and acknowledged.
CREATE TABLE backup_uploads (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    backup_id TEXT NOT NULL,
    header TEXT NOT NULL,
    envelope TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (server_id, seq)
);
CREATE INDEX backup_uploads_updated ON backup_uploads(updated_at);

-- Every run's outcome as the agent reports it: ok | unchanged | failed (+ reason).
CREATE TABLE backup_runs (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    seq BIGINT,
    backup_id TEXT,
    files BIGINT,
    bytes BIGINT
);
CREATE INDEX backup_runs_server ON backup_runs(server_id, finished_at);

-- Public age recipients (age1…) every backup of the partner's servers is encrypted to.
-- role: recovery (the partner's recovery key) | extra (a further recipient).
-- No private key ever: the collector must not be able to decrypt a backup.
CREATE TABLE backup_recipients (
    partner_id INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'recovery',
    label TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (partner_id, recipient)
);

-- Policy rows: scope 'partner' (scope_id = partner id) is the partner's default,
-- scope 'server' (scope_id = server id) overrides it. NULL = inherit.
CREATE TABLE backup_policies (
    scope TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    interval_s BIGINT,
    backup_window TEXT,
    keep_last INTEGER,
    keep_daily INTEGER,
    keep_weekly INTEGER,
    keep_monthly INTEGER,
    keep_yearly INTEGER,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, scope_id)
);
