-- Credentials at rest and re-enrollment consent.
-- Times are epoch seconds (UTC); DOUBLE PRECISION because PostgreSQL's REAL is 4 bytes.

-- Session keys are now stored sealed under a key only the running collector holds; keys
-- stored in clear before are dropped (each agent opens a new session at its next request).
DELETE FROM sessions;

-- Re-enrolling a machine that is already enrolled needs the operator's consent: a token
-- made with --allow-reenroll, or `vigil-collector server allow-reenroll SERVER_ID`.
ALTER TABLE enrollment_tokens ADD COLUMN allow_reenroll INTEGER NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN reenroll_allowed_until DOUBLE PRECISION;

-- Browser sign-ins: the SHA-256 of the random cookie value (never the cookie, never the
-- API key), ended by expiry, sign-out or the revocation of the API key it was made from.
CREATE TABLE page_sessions (
    id_hash TEXT PRIMARY KEY,
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    api_key_id INTEGER NOT NULL REFERENCES api_keys(id),
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX page_sessions_expiry ON page_sessions(expires_at);
