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


VENDOR_CASES = [
    # The vendor's users read every partner's fleet, incidents and contracts ...
    *[
        (role, "GET", path, True)
        for role in ("viewer", "admin")
        for path in (
            "/",
            "/servers/srv_1",
            "/incidents",
            "/contracts",
            "/contracts/report",
            "/contracts/report.pdf",
            "/api/v1/servers",
            "/api/v1/servers/srv_1/cameras",
            "/api/v1/incidents",
            "/api/v1/reports/monthly.pdf",
        )
    ],
    # ... and change nothing of a partner's, whatever their role.
    *[
        (role, method, path, False)
        for role in ("viewer", "operator", "admin")
        for method, path in (
            ("POST", INC + "/acknowledge"),
            ("POST", "/incidents/INC-1/resolve"),
            ("POST", "/api/v1/incidents"),
            ("PUT", "/api/v1/contracts/C-1"),
            ("POST", "/servers/srv_1/silence"),
            ("POST", "/settings/backup-policy"),
            ("POST", "/api/v1/enrollment-tokens"),
            ("GET", "/settings/notifications"),
            ("GET", "/api/v1/notify/channels"),
            ("GET", "/api/v1/backup-policy"),
        )
    ],
    # Their own keys, and for their admin their own organisation's users.
    ("viewer", "POST", "/api/v1/api-keys", True),
    ("viewer", "POST", "/api/v1/users", False),
    ("operator", "POST", "/settings/users", False),
    ("admin", "POST", "/api/v1/users", True),
    ("admin", "POST", "/settings/users/7/disable", True),
]


@pytest.mark.parametrize(("role", "method", "path", "expected"), VENDOR_CASES)
def test_vendor_role_table(role: str, method: str, path: str, expected: bool) -> None:
    assert allowed(role, False, method, path, vendor=True) is expected
    # A customer of the vendor organisation gets nothing of the vendor's reach.
    if method == "GET" and path in ("/api/v1/incidents", "/contracts"):
        assert allowed(role, True, method, path, vendor=True) is (path == "/api/v1/incidents")
