-- A partner's servers in the fleet's order (hostname, id) straight from an index: the
-- fleet view and GET /api/v1/servers read them all on every request, and without it
-- SQLite sorted 10,000 rows (with their stored state) in a temporary B-tree each time.
CREATE INDEX servers_partner_hostname ON servers(partner_id, hostname, id);
