-- The check run asks which servers attempted a backup in the last 31 days, over every
-- partner: by finish time, a range of this index instead of a scan of all runs.
CREATE INDEX backup_runs_finished ON backup_runs(finished_at, server_id);
