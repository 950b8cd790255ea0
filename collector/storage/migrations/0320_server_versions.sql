-- The software each server ran and from when, so that a month that is over is judged on
-- the version the server ran then, not on the one it runs today. A row is written when
-- the contract checks first see a server's version (its first from its enrolment).
CREATE TABLE server_versions (
    server_id TEXT NOT NULL,
    since REAL NOT NULL,
    product TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (server_id, since)
);
