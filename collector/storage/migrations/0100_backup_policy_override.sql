-- A partner may knowingly run a backup policy below its contracts' promise only with an
-- explicit override; its reason is kept here (NULL = no override) and shown in reports.
ALTER TABLE backup_policies ADD COLUMN contract_override TEXT;
