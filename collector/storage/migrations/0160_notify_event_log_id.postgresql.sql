-- PostgreSQL: the existing rows are copied in the order they were written (ctid; the
-- log is only ever appended to and pruned), as SQLite copies them by rowid.
-- The notification event log gets a row id of its own: an event's outcomes are listed in
-- the order they were written (queued before the message it became), which SQLite's
-- rowid gave and PostgreSQL has no column for. Existing rows keep their order.
CREATE TABLE notify_event_log_new (
    id {{auto_id}},
    event_id INTEGER NOT NULL,
    route_id INTEGER,
    outcome TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
INSERT INTO notify_event_log_new (event_id, route_id, outcome, at)
    SELECT event_id, route_id, outcome, at FROM notify_event_log ORDER BY at, ctid;
DROP TABLE notify_event_log;
ALTER TABLE notify_event_log_new RENAME TO notify_event_log;
CREATE INDEX notify_event_log_event ON notify_event_log(event_id, id);
