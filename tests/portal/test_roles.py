"""The role table (collector/accounts/roles.py), request by request."""

from __future__ import annotations

import pytest

from collector.accounts.roles import allowed

INC = "/api/v1/incidents/INC-1"
CASES = [
    # role, customer?, method, path, allowed
    ("viewer", False, "GET", "/api/v1/servers", True),
    ("viewer", False, "POST", f"{INC}/acknowledge", False),
    ("viewer", False, "POST", "/logout", True),
    ("viewer", False, "POST", "/api/v1/api-keys", True),
    ("viewer", False, "DELETE", "/api/v1/api-keys/3", True),
    ("viewer", False, "POST", "/settings/api-keys/3/revoke", True),
    ("viewer", False, "POST", "/settings/users", False),
    ("operator", False, "POST", f"{INC}/resolve", True),
    ("operator", False, "POST", "/incidents/INC-1/resolve", True),
    ("operator", False, "POST", "/api/v1/incidents", True),
    ("operator", False, "POST", "/api/v1/users", False),
    ("operator", False, "PUT", "/api/v1/contracts/C-1", False),
    ("operator", False, "POST", "/settings/tokens", False),
    ("admin", False, "POST", "/api/v1/users", True),
    ("admin", False, "POST", "/settings/backup-policy", True),
    ("operator", True, "GET", "/api/v1/servers/srv_1/cameras", True),
    ("operator", True, "GET", "/api/v1/servers/srv_1/backups/latest/object", False),
    ("operator", True, "GET", "/api/v1/contracts", False),
    ("operator", True, "GET", "/api/v1/users", False),
    ("operator", True, "POST", f"{INC}/accept", True),
    ("operator", True, "POST", f"{INC}/reopen", True),
    ("operator", True, "POST", f"{INC}/acknowledge", False),
    ("viewer", True, "POST", f"{INC}/accept", False),
    ("operator", True, "POST", "/incidents/INC-1/accept", True),
    ("operator", True, "POST", "/incidents/INC-1/resolve", False),
    ("admin", True, "POST", "/settings/users", False),
    ("admin", True, "GET", "/contracts", False),
    ("viewer", True, "POST", "/logout", True),
    ("nobody", False, "GET", "/api/v1/servers", False),
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
