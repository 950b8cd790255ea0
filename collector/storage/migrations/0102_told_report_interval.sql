-- The report interval the collector last told each server (in the acknowledgement of its
-- newest report) and the grace owed after that told interval changed: offline is judged
-- against what the server was told, not against a setting it has not heard of yet.
ALTER TABLE servers ADD COLUMN told_interval_s BIGINT;
ALTER TABLE servers ADD COLUMN told_grace_s BIGINT NOT NULL DEFAULT 0;
