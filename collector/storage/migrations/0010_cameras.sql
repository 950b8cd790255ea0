-- Cameras of each server: latest verdict and details, and every change of verdict.

CREATE TABLE cameras (
    server_id TEXT NOT NULL REFERENCES servers(id),
    key TEXT NOT NULL,
    verdict TEXT NOT NULL,
    since REAL NOT NULL,
    updated_at REAL NOT NULL,
    manufacturer TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    firmware TEXT NOT NULL DEFAULT '',
    serial TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    first_seen REAL NOT NULL,
    removed_at REAL,
    PRIMARY KEY (server_id, key)
);
CREATE INDEX cameras_model ON cameras(manufacturer, model);

CREATE TABLE camera_events (
    id {{auto_id}},
    server_id TEXT NOT NULL,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    from_verdict TEXT,
    to_verdict TEXT NOT NULL,
    reasons TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX camera_events_cam ON camera_events(server_id, key, at);

ALTER TABLE servers ADD COLUMN cameras_digest TEXT NOT NULL DEFAULT '';
