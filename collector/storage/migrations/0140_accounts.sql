-- Accounts: people sign in with an e-mail address and a password; each belongs to one
-- organisation (a partner, or one of a partner's customers) with one role in it.
-- Times are epoch seconds (UTC); DOUBLE PRECISION because PostgreSQL's REAL is 4 bytes.

-- A partner's customer: its name is the ``customer`` of that partner's contracts, and its
-- users see the servers those contracts cover, nothing else.
CREATE TABLE customers (
    id {{auto_id}},
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (partner_id, name)
);

-- role: admin (users, keys, tokens, policies), operator (acknowledge, resolve, accept),
-- viewer (read only). service = 1: a service account, which owns API keys and never signs
-- in with a password. password_hash is an argon2id PHC string.
CREATE TABLE users (
    id {{auto_id}},
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    customer_id INTEGER REFERENCES customers(id),
    role TEXT NOT NULL,
    service INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    disabled_at DOUBLE PRECISION,
    last_login_at DOUBLE PRECISION
);
CREATE INDEX users_partner ON users(partner_id);

-- Every partner gets a service account; the partner's existing API keys become its keys,
-- so they keep working with the partner's full (admin) rights.
INSERT INTO users (email, partner_id, role, service, created_at)
SELECT 'service-account.partner-' || id || '.invalid', id, 'admin', 1, created_at FROM partners;

ALTER TABLE api_keys ADD COLUMN user_id INTEGER REFERENCES users(id);
ALTER TABLE api_keys ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN last_used_at DOUBLE PRECISION;
UPDATE api_keys SET user_id = (
    SELECT u.id FROM users u WHERE u.partner_id = api_keys.partner_id AND u.service = 1
);
ALTER TABLE enrollment_tokens ADD COLUMN created_by INTEGER REFERENCES users(id);

-- Browser sign-ins now belong to a user (by password, or by one of its API keys: then
-- the sign-in also ends when that key is revoked). Earlier sign-ins are ended.
DROP TABLE page_sessions;
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    api_key_id INTEGER REFERENCES api_keys(id),
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions(expires_at);
CREATE INDEX web_sessions_user ON web_sessions(user_id);
