-- Findings are kept across check runs and changed only where they differ: fkey identifies
-- a finding (server, contract, kind, window), digest its content; run_at is when it was
-- first seen.
ALTER TABLE contract_findings ADD COLUMN fkey TEXT NOT NULL DEFAULT '';
ALTER TABLE contract_findings ADD COLUMN digest TEXT NOT NULL DEFAULT '';
CREATE INDEX contract_findings_fkey ON contract_findings(fkey);
