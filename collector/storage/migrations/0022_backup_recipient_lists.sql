-- The partner's signed recipient list (vigil-recipients-v1:…, made offline with
-- `vigil-backup sign-recipients`), one per partner: the newest replaces the older.
-- The collector stores and forwards it as given; agents that pinned the partner's
-- signing key encrypt only to recipients it names. signer: the key's fingerprint.
CREATE TABLE backup_recipient_lists (
    partner_id INTEGER PRIMARY KEY,
    signed TEXT NOT NULL,
    signer TEXT NOT NULL,
    signed_at DOUBLE PRECISION NOT NULL,
    added_at DOUBLE PRECISION NOT NULL
);
