-- One row the health check rewrites: proof that the database still commits.
CREATE TABLE health_heartbeat (
    id INTEGER PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL
);
