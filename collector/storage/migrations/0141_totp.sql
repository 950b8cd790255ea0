-- An optional second factor per user: a TOTP secret (RFC 6238, 30 s steps), and the last
-- step a code was accepted for, so a code is good once. The secret must be readable to
-- check codes; a copy of the database yields it, never the password (argon2id hash).
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
