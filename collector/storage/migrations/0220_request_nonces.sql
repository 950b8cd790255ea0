-- Replay protection shared by every collector process: a signed request's nonce is
-- inserted once (a second insert of it is a replay), and forgotten past twice the
-- accepted clock skew, when its timestamp alone refuses it.
CREATE TABLE request_nonces (
    nonce TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
CREATE INDEX request_nonces_seen ON request_nonces(seen_at);
