"""The vendor organisation: the operator's own organisation, whose users read every
partner's fleet, servers, incidents and contracts and change nothing of a partner's.

It is a ``partners`` row with ``vendor = 1`` (``vigil-collector org add NAME --vendor``):
its users, roles and API keys are made and checked like any partner's, and every
partner-scoped handler that a vendor user reaches scopes to that row, which holds no
servers, contracts or incidents. What a vendor user may request at all is decided in
:mod:`collector.accounts.roles`; the handlers that read across partners (the fleet, the
server, the incidents and the contracts pages and their API) ask :func:`partners_read`
which partners' objects to list.
"""

from __future__ import annotations

from typing import Any

from collector.accounts import partners


def partners_read(conn: Any, vendor: bool, partner_id: int, name: str) -> list[tuple[int, str]]:
    """(id, name) of the partners whose objects the asker lists: every partner's for a
    vendor user, else its own partner's alone."""
    if not vendor:
        return [(partner_id, name)]
    return [(p.id, p.name) for p in partners.customer_partners(conn)]
