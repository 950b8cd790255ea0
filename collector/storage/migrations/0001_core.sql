-- Core: partners, their credentials, enrolled servers, sessions, health history.
-- Times are REAL epoch seconds (UTC); JSON is TEXT.

CREATE TABLE partners (
    id {{auto_id}},
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    report_interval_s INTEGER
);

CREATE TABLE enrollment_tokens (
    id {{auto_id}},
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    token_hash TEXT NOT NULL UNIQUE,
    uses_left INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);

CREATE TABLE api_keys (
    id {{auto_id}},
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);

CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    hostname TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    licence_id TEXT,
    public_key BLOB NOT NULL,
    agent_version TEXT NOT NULL DEFAULT '',
    os TEXT NOT NULL DEFAULT '',
    enrolled_at REAL NOT NULL,
    revoked_at REAL,
    report_interval_s INTEGER,
    last_seen REAL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    reports_received INTEGER NOT NULL DEFAULT 0,
    dropped_reports INTEGER NOT NULL DEFAULT 0,
    missing_reports INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX servers_partner ON servers(partner_id);
CREATE INDEX servers_machine ON servers(partner_id, machine_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL REFERENCES servers(id),
    key BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);

-- One row per accepted report (compact: no camera details), pruned by retention.
-- UNIQUE(server_id, report_id) is what makes a retried report land exactly once.
CREATE TABLE reports (
    server_id TEXT NOT NULL,
    report_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    collected_at REAL NOT NULL,
    received_at REAL NOT NULL,
    cpu_percent REAL,
    memory_percent REAL,
    volumes TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (server_id, report_id)
);
CREATE INDEX reports_time ON reports(server_id, collected_at);
CREATE INDEX reports_received ON reports(received_at);
