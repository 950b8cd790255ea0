-- Notifications: the events outbox, what is active, channels, routes, silences, messages.

-- Every state change worth telling, written in the same transaction as the change.
CREATE TABLE notify_events (
    id {{auto_id}},
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    partner_id INTEGER,
    server_id TEXT,
    subject TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    at DOUBLE PRECISION NOT NULL,
    routed_at DOUBLE PRECISION,
    claimed_by TEXT,
    lease_until DOUBLE PRECISION
);
CREATE INDEX notify_events_unrouted ON notify_events(routed_at, id);
CREATE INDEX notify_events_partner ON notify_events(partner_id, id);

-- Conditions that are active now (a camera down, a server offline): an event is written
-- when one starts, changes kind or ends, never for the same state twice.
CREATE TABLE notify_conditions (
    dedup_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    server_id TEXT,
    since DOUBLE PRECISION NOT NULL
);
CREATE INDEX notify_conditions_server ON notify_conditions(server_id);

-- Customer and site of a server, for routes, silences and grouping.
CREATE TABLE notify_server_labels (
    server_id TEXT PRIMARY KEY,
    customer TEXT NOT NULL DEFAULT '',
    site TEXT NOT NULL DEFAULT ''
);

CREATE TABLE notify_channels (
    id TEXT PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    customer TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    secret {{bytes}},
    old_secret {{bytes}},
    old_secret_until DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    removed_at DOUBLE PRECISION,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    last_ok_at DOUBLE PRECISION,
    last_failed_at DOUBLE PRECISION
);
CREATE INDEX notify_channels_partner ON notify_channels(partner_id);

CREATE TABLE notify_routes (
    id {{auto_id}},
    partner_id INTEGER NOT NULL,
    channel_id TEXT NOT NULL REFERENCES notify_channels(id),
    kinds TEXT NOT NULL DEFAULT '*',
    min_severity TEXT NOT NULL DEFAULT 'info',
    customer TEXT NOT NULL DEFAULT '',
    site TEXT NOT NULL DEFAULT '',
    group_wait_s DOUBLE PRECISION NOT NULL DEFAULT 30,
    repeat_s DOUBLE PRECISION NOT NULL DEFAULT 14400,
    send_resolved INTEGER NOT NULL DEFAULT 1,
    digest INTEGER NOT NULL DEFAULT 0,
    digest_hour INTEGER NOT NULL DEFAULT 8,
    quiet_from TEXT NOT NULL DEFAULT '',
    quiet_until TEXT NOT NULL DEFAULT '',
    timezone TEXT NOT NULL DEFAULT 'UTC',
    last_digest_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX notify_routes_partner ON notify_routes(partner_id);

CREATE TABLE notify_silences (
    id {{auto_id}},
    partner_id INTEGER NOT NULL,
    scope TEXT NOT NULL,
    value TEXT NOT NULL,
    starts_at DOUBLE PRECISION NOT NULL,
    ends_at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX notify_silences_partner ON notify_silences(partner_id, ends_at);

-- Per route and de-duplication key: the latest state and what was last sent, which is
-- what the repeat interval and the resolved notice are judged on.
CREATE TABLE notify_alerts (
    route_id INTEGER NOT NULL,
    dedup_key TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    group_key TEXT NOT NULL,
    pending_since DOUBLE PRECISION,
    sent_status TEXT,
    sent_kind TEXT,
    sent_at DOUBLE PRECISION,
    firing_sent_at DOUBLE PRECISION,
    resolved_sent_at DOUBLE PRECISION,
    PRIMARY KEY (route_id, dedup_key)
);
CREATE INDEX notify_alerts_pending ON notify_alerts(pending_since);

-- What happened to each event on each route: queued, silenced, quiet, digest, suppressed.
CREATE TABLE notify_event_log (
    event_id INTEGER NOT NULL,
    route_id INTEGER,
    outcome TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX notify_event_log_event ON notify_event_log(event_id);

-- One message to one channel (one or many events), delivered in order per channel.
CREATE TABLE notify_messages (
    id {{auto_id}},
    channel_id TEXT NOT NULL,
    route_id INTEGER,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    claimed_by TEXT,
    lease_until DOUBLE PRECISION,
    delivered_at DOUBLE PRECISION,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX notify_messages_due ON notify_messages(state, channel_id, id);

CREATE TABLE notify_attempts (
    id {{auto_id}},
    message_id INTEGER NOT NULL,
    channel_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    ok INTEGER NOT NULL,
    answer TEXT NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX notify_attempts_channel ON notify_attempts(channel_id, id);
