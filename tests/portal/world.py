"""Two partners on one real collector, one of them with two customers: each with its own
agents (servers reporting health), contracts, incidents, users and API keys.

acme: customers "Museum" (server museum-1, contract A-M on premium-24x7, whose incidents
wait for the customer's acceptance) and "Bakery" (bakery-1, A-B), plus an uncovered
server acme-free; rival: server rival-1 under contract R-1. The vendor organisation
"vigil-ops" (no servers of its own) has an admin and a viewer, who read both partners.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.net import http, http_no_redirect, set_cookies
from harness.processes import Agent, Collector
from harness.signed import batch, post_signed, report, session_for

START = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
"""The contracts' start: two days back, so that they cover the reports' history at any hour."""
HEADER = "contract_id,customer,partner,plan,licence_ids,start,installed_on\n"


def call(
    collector: Collector, key: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    data = None
    if isinstance(body, str):
        data = body.encode()
        headers["Content-Type"] = "text/csv"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    status, _, out = http(method, collector.url + path, data, headers)
    try:
        return status, json.loads(out) if out else None
    except ValueError:
        return status, out


@dataclass
class World:
    collector: Collector
    keys: dict[str, str] = field(default_factory=dict)
    """user name -> API key (acme, rival: the partners' service accounts)."""
    passwords: dict[str, str] = field(default_factory=dict)
    """user name -> password; the e-mail address is NAME@example.test."""
    servers: dict[str, str] = field(default_factory=dict)
    """server name -> server id."""
    incidents: dict[str, str] = field(default_factory=dict)
    """server name -> id of an incident opened on it."""
    agents: list[Agent] = field(default_factory=list)

    def email(self, user: str) -> str:
        return f"{user}@example.test"


VENDOR = "vigil-ops"
"""The vendor organisation's name."""
USERS = (
    # name, partner, customer, role
    ("acme-admin", "acme", None, "admin"),
    ("acme-operator", "acme", None, "operator"),
    ("acme-viewer", "acme", None, "viewer"),
    ("museum", "acme", "Museum", "operator"),
    ("bakery", "acme", "Bakery", "operator"),
    ("rival-admin", "rival", None, "admin"),
    ("vendor-admin", VENDOR, None, "admin"),
    ("vendor-viewer", VENDOR, None, "viewer"),
)
SERVERS = (
    # name, partner, licence, contract id, customer
    ("museum-1", "acme", "LIC-M", "A-M", "Museum"),
    ("bakery-1", "acme", "LIC-B", "A-B", "Bakery"),
    ("acme-free", "acme", "LIC-X", None, None),
    ("rival-1", "rival", "LIC-R", "R-1", "Rival Customer"),
)


PLANS = {"A-M": "premium-24x7"}
"""Contracts not on maintenance-support."""


def _enroll(c: Collector, root: Path, token: str, name: str, licence: str) -> tuple[Agent, str]:
    agent = Agent(root / name, f'licence_id = "{licence}"\n')
    server_id = agent.enroll(c.url, token)
    session = session_for(agent.state_dir, c.url)
    host = {"hostname": name, "cpu_percent": 3.5}
    now = time.time()
    # Two days of history, a report every 3 hours, the video volume filling up 160 B a day:
    # forecast full within 48 h from the 14th report on (exactly 48 h there), so the volume
    # incident opens 6 or 3 hours back, never by a rounding at the last report.
    for seq in range(1, 17):
        used, at = 400 + 20 * seq, now - (16 - seq) * 3 * 3600
        volumes = [
            {
                "mountpoint": "/video",
                "total": 1000,
                "used": used,
                "free": 1000 - used,
                "recording": True,
                "fill_rate_bytes_per_day": 160.0,
                "full_at": at + (1000 - used) / 160.0 * 86400,
            },
            {"mountpoint": "/", "total": 1000, "used": 200, "free": 800},
        ]
        rep = report(seq, host=host, volumes=volumes, collected_at=at)
        status, ack = post_signed(c.url, session, "/api/v1/agent/reports", batch(rep))
        assert status == 200, ack
    return agent, server_id


def build(root: Path, env: dict[str, str] | None = None) -> World:
    """The world's collector, started with ``env`` added to its environment (on
    PostgreSQL, the module's own database)."""
    config = root / "collector.toml"
    config.write_text("[notify]\nallow_private_targets = true\n")  # the walk's webhooks
    c = Collector(root / "collector", config=config, env=env or {}).start()
    w = World(c)
    tokens = {}
    for partner in ("acme", "rival"):
        w.keys[partner], tokens[partner] = c.partner(partner)
    for partner in ("acme", "rival"):  # an import replaces the partner's contracts: one file
        rows = [
            f"{cid},{customer},{partner},{PLANS.get(cid, 'maintenance-support')},{lic},"
            f"{START},{START}\n"
            for _name, p, lic, cid, customer in SERVERS
            if p == partner and cid is not None
        ]
        status, out = call(
            c, w.keys[partner], "POST", "/api/v1/contracts/import", HEADER + "".join(rows)
        )
        assert status == 200, out
    for name, partner, lic, _cid, _customer in SERVERS:
        agent, w.servers[name] = _enroll(c, root, tokens[partner], name, lic)
        w.agents.append(agent)
    for customer in ("Museum", "Bakery"):
        c.admin("org", "add", customer, "--customer-of", "acme")
    c.admin("org", "add", VENDOR, "--vendor")
    for name, partner, customer, role in USERS:
        args = ["user", "add", w.email(name), "--partner", partner, "--role", role]
        w.passwords[name] = c.admin_last_line(
            *args, *(["--customer", customer] if customer else [])
        )
        w.keys[name] = c.admin_last_line(
            "apikey", "create", "--partner", partner, "--user", w.email(name)
        )
    for name, partner, _lic, cid, _customer in SERVERS:
        if cid is None:
            continue
        body = {
            "contract_id": cid,
            "priority": "P2" if PLANS.get(cid) == "premium-24x7" else "high",
            "server_id": w.servers[name],
            "title": f"disk trouble on {name}",
        }
        status, inc = call(c, w.keys[partner], "POST", "/api/v1/incidents", body)
        assert status == 201, inc
        w.incidents[name] = inc["id"]
    for partner in ("acme", "rival"):  # a channel, a route and a silence each, for the walk
        channel = c.admin_last_line(
            "channel", "add", "--partner", partner, "--type", "webhook",
            "--name", f"{partner} desk", "--url", "http://127.0.0.1:9/hook",
        )  # fmt: skip
        c.admin("route", "add", "--partner", partner, "--channel", channel.split()[0])
        c.admin("silence", "add", "--partner", partner, "--scope", "customer",
              "--value", "Museum", "--duration", "2h")  # fmt: skip
    return w


def sign_in(c: Collector, email: str, password: str) -> tuple[int, dict[str, str], bytes]:
    """Sign in on the pages' form with an e-mail address and password, as a browser does:
    (status, the ``Cookie`` header a browser then sends (empty if refused), page)."""
    _, headers, page = http_no_redirect("GET", c.url + "/login")
    csrf_cookie = set_cookies(headers)["vigil_csrf"].split(";", 1)[0]
    field = re.search(rb'name="csrf" value="([^"]*)"', page)
    assert field is not None, page
    form = urllib.parse.urlencode(
        {"csrf": field.group(1).decode(), "email": email, "password": password}
    )
    status, headers, body = http_no_redirect(
        "POST",
        c.url + "/login",
        form.encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": csrf_cookie},
    )
    got = set_cookies(headers).get("vigil_session")
    return status, ({"Cookie": got.split(";", 1)[0]} if got and status == 302 else {}), body


def page(c: Collector, path: str, cookie: dict[str, str]) -> tuple[int, bytes]:
    status, _, body = http_no_redirect("GET", c.url + path, headers=cookie)
    return status, body


def csrf_of(body: bytes) -> str:
    m = re.search(rb'name="csrf" value="([^"]+)"', body)
    assert m is not None, body[:500]
    return m.group(1).decode()


def post_form(
    c: Collector, path: str, cookie: dict[str, str], fields: dict[str, str]
) -> tuple[int, list[tuple[str, str]], bytes]:
    """POST a page's form with the sign-in's CSRF token (taken from the fleet page)."""
    token = csrf_of(page(c, "/", cookie)[1])
    form = urllib.parse.urlencode({"csrf": token, **fields}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **cookie}
    return http_no_redirect("POST", c.url + path, form, headers)
