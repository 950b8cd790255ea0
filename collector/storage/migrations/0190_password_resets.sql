-- One-time password-reset links: only the SHA-256 of a link's token is kept; a link
-- works once (used_at) and until expires_at.
CREATE TABLE password_resets (
    id {{auto_id}},
    user_id INTEGER NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    used_at DOUBLE PRECISION
);
CREATE INDEX password_resets_user ON password_resets(user_id);
