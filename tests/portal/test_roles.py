"""The role table (collector/accounts/roles.py), request by request."""

from __future__ import annotations

import pytest

from collector.accounts.roles import allowed

INC = "/api/v1/incidents/INC-1"


def _as(role: str, customer: bool, *cases: tuple[str, str, bool]) -> list[tuple]:
    """Cases for one kind of user: ``role``, a customer's user or the partner's own; each
    case (method, path, allowed)."""
    return [(role, customer, method, path, ok) for method, path, ok in cases]


CASES = [
    *_as(
        "viewer",
        False,
        ("GET", "/api/v1/servers", True),
        ("POST", f"{INC}/acknowledge", False),
        ("POST", "/logout", True),
        ("POST", "/api/v1/api-keys", True),
        ("DELETE", "/api/v1/api-keys/3", True),
        ("POST", "/settings/api-keys/3/revoke", True),
        ("POST", "/settings/users", False),
    ),
    *_as(
        "operator",
        False,
        ("POST", f"{INC}/resolve", True),
        ("POST", "/incidents/INC-1/resolve", True),
        ("POST", "/api/v1/incidents", True),
        ("POST", "/api/v1/users", False),
        ("PUT", "/api/v1/contracts/C-1", False),
        ("POST", "/settings/tokens", False),
    ),
    *_as(
        "admin",
        False,
        ("POST", "/api/v1/users", True),
        ("POST", "/settings/backup-policy", True),
        ("PUT", "/api/v1/backup-policy", True),
    ),
    *_as("operator", False, ("PUT", "/api/v1/backup-policy", False)),
    *_as("admin", True, ("PUT", "/api/v1/backup-policy", False)),
    *_as("viewer", False, ("GET", "/api/v1/backup-policy", True)),
    *_as(
        "operator",
        True,
        ("GET", "/api/v1/servers/srv_1/cameras", True),
        ("GET", "/api/v1/servers/srv_1/backups/latest/object", False),
        ("GET", "/api/v1/contracts", False),
        ("GET", "/api/v1/users", False),
        ("POST", f"{INC}/accept", True),
        ("POST", f"{INC}/reopen", True),
        ("POST", f"{INC}/acknowledge", False),
        ("POST", "/incidents/INC-1/accept", True),
        ("POST", "/incidents/INC-1/resolve", False),
    ),
    *_as(
        "viewer",
        True,
        ("POST", f"{INC}/accept", False),
        ("POST", "/logout", True),
    ),
    *_as(
        "admin",
        True,
        ("POST", "/settings/users", False),
        ("GET", "/contracts", False),
    ),
    *_as("nobody", False, ("GET", "/api/v1/servers", False)),
    # Silences are an operator's; channels and routes the admin's; viewers read them.
    ("operator", False, "POST", "/settings/notifications/silences", True),
    ("operator", False, "POST", "/settings/notifications/silences/4/end", True),
    ("operator", False, "POST", "/servers/srv_1/silence", True),
    ("operator", False, "POST", "/api/v1/notify/silences", True),
    ("operator", False, "DELETE", "/api/v1/notify/silences/4", True),
    ("viewer", False, "POST", "/settings/notifications/silences", False),
    ("viewer", False, "POST", "/servers/srv_1/silence", False),
    ("viewer", False, "GET", "/settings/notifications", True),
    ("operator", False, "POST", "/settings/notifications/channels", False),
    ("operator", False, "POST", "/settings/notifications/channels/ch_1/test", False),
    ("operator", False, "POST", "/settings/notifications/routes", False),
    ("operator", False, "POST", "/api/v1/notify/channels", False),
    ("admin", False, "POST", "/settings/notifications/channels", True),
    ("operator", True, "POST", "/servers/srv_1/silence", False),
    ("admin", True, "GET", "/settings/notifications", False),
]


@pytest.mark.parametrize(("role", "customer", "method", "path", "expected"), CASES)
def test_role_table(role: str, customer: bool, method: str, path: str, expected: bool) -> None:
    assert allowed(role, customer, method, path) is expected
