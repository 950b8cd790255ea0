-- The vendor: the operator's own organisation, whose users see every partner's fleet,
-- incidents and contracts (and change nothing of theirs). A partners row with vendor = 1
-- holds its users and API keys like any partner; it has no servers of its own.
ALTER TABLE partners ADD COLUMN vendor INTEGER NOT NULL DEFAULT 0;
