-- Contracts belong to one partner: a contract id is unique per partner, not across the
-- collector. One partner naming another's contract id (now or ever used) creates its own
-- contract and never touches the other's current version, history, licences or incidents.
-- SQLite cannot change a primary key in place, so each table is copied into its new shape.

CREATE TABLE contract_versions_by_partner (
    partner TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    valid_from DOUBLE PRECISION NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (partner, contract_id, version)
);
INSERT INTO contract_versions_by_partner
    (partner, contract_id, version, valid_from, removed, data, source)
SELECT partner, contract_id, version, valid_from, removed, data, source FROM contract_versions;
DROP TABLE contract_versions;
ALTER TABLE contract_versions_by_partner RENAME TO contract_versions;

CREATE TABLE contracts_by_partner (
    partner TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    customer TEXT NOT NULL,
    plan TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (partner, id)
);
INSERT INTO contracts_by_partner (partner, id, version, customer, plan, data, updated_at)
SELECT partner, id, version, customer, plan, data, updated_at FROM contracts;
DROP INDEX contracts_partner;
DROP TABLE contracts;
ALTER TABLE contracts_by_partner RENAME TO contracts;

-- Licence id -> current contracts covering it, per partner: a licence id claimed by one
-- partner's contract or agent says nothing about another partner's servers.
CREATE TABLE contract_licences_by_partner (
    partner TEXT NOT NULL,
    licence_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    PRIMARY KEY (partner, licence_id, contract_id)
);
INSERT INTO contract_licences_by_partner (partner, licence_id, contract_id)
SELECT c.partner, l.licence_id, l.contract_id
FROM contract_licences l JOIN contracts c ON c.id = l.contract_id;
DROP INDEX contract_licences_contract;
DROP TABLE contract_licences;
ALTER TABLE contract_licences_by_partner RENAME TO contract_licences;
CREATE INDEX contract_licences_contract ON contract_licences(partner, contract_id);

CREATE INDEX incidents_contract ON incidents(partner, contract_id);

-- A finding's key names its partner too (two partners' contracts may share an id); the
-- stored keys are brought to that form so no finding looks new (its run_at is kept).
UPDATE contract_findings SET fkey = partner || '|' || fkey WHERE fkey <> '';
