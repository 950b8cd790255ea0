-- Contract engine: contract versions (every change kept), release catalogue, incidents,
-- the latest check results, partner settings and the SMA module price list.
-- Times are epoch seconds (UTC); DOUBLE PRECISION because PostgreSQL's REAL is 4 bytes.
-- JSON is TEXT. See docs/contracts.md.

-- Every version of every contract; never updated, only appended. data = the contract as
-- JSON (collector.contracts.codec); removed = 1 marks the contract removed from valid_from on.
CREATE TABLE contract_versions (
    contract_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    valid_from DOUBLE PRECISION NOT NULL,
    partner TEXT NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (contract_id, version)
);

-- The current version of each contract (a cache of the last row above, for fast reads).
CREATE TABLE contracts (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    partner TEXT NOT NULL,
    customer TEXT NOT NULL,
    plan TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX contracts_partner ON contracts(partner);

-- Licence id -> current contracts covering it.
CREATE TABLE contract_licences (
    licence_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    PRIMARY KEY (licence_id, contract_id)
);
CREATE INDEX contract_licences_contract ON contract_licences(contract_id);

-- Release catalogue: which version came out when.
CREATE TABLE releases (
    product TEXT NOT NULL,
    version TEXT NOT NULL,
    released_on TEXT NOT NULL,
    PRIMARY KEY (product, version)
);

-- Incidents: opening data as columns, the append-only event list as JSON.
-- finding_key = "<server_id>:<kind>" for incidents the checks opened (NULL when manual).
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    partner TEXT NOT NULL,
    contract_id TEXT,
    server_id TEXT,
    plan TEXT NOT NULL,
    priority TEXT NOT NULL,
    opened_at DOUBLE PRECISION NOT NULL,
    calendar TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT 'manual',
    finding_key TEXT,
    state TEXT NOT NULL,
    events TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX incidents_partner ON incidents(partner, opened_at);
CREATE INDEX incidents_finding ON incidents(finding_key, state);

-- Findings of the last check run (replaced as a whole by each run).
CREATE TABLE contract_findings (
    id {{auto_id}},
    run_at DOUBLE PRECISION NOT NULL,
    partner TEXT NOT NULL,
    server_id TEXT,
    contract_id TEXT,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    clause TEXT NOT NULL,
    message TEXT NOT NULL,
    evidence TEXT NOT NULL
);
CREATE INDEX contract_findings_partner ON contract_findings(partner);

-- Per-partner settings: the finding kind -> priority map for automatic incidents.
CREATE TABLE contract_partner_settings (
    partner TEXT PRIMARY KEY,
    priority_map TEXT NOT NULL DEFAULT '{}',
    updated_at DOUBLE PRECISION NOT NULL
);

-- SMA price basis: list price per software module (decimal as text).
CREATE TABLE module_prices (
    module TEXT PRIMARY KEY,
    price TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

-- Which collector process runs the scheduled checks (a lease, renewed while alive).
CREATE TABLE contract_scheduler_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
