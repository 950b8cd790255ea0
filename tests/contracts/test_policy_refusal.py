"""A partner backup policy that breaks a contract's promise is refused wherever it is set
(the settings page and the API as well as the CLI), naming the promise; an override with a
reason stores it, and the reason is recorded for every caller alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.backups import errors
from collector.backups.policy_routes import policy_from_json
from harness.processes import Collector
from tests.contracts.test_backup_policy_contract import contract_file, policy
from tests.portal.world import call, page, post_form, sign_in

KEEP = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
BROKEN = "keep_last 3 is below the 7 promised by contract C-1 (Maintenance &amp; Support)"


def form(**fields: str) -> dict[str, str]:
    """The settings page's policy form: daily, keep 7 / 7 / 4 / 12 / 0 unless changed."""
    base = dict(zip(KEEP, ("7", "7", "4", "12", "0"), strict=True))
    return {"interval": "24h", "window": "", **base, **fields}


def setup_partner(collector: Collector, make_agent: Any, tmp_path: Path) -> tuple[str, str]:
    """acme with a Maintenance & Support contract (keep the last 7) on its one server."""
    key, token = collector.partner("acme")
    collector.cli(
        "contracts", "import", str(contract_file(tmp_path, "maintenance-support", "LIC-M"))
    )
    server_id = make_agent(extra_config='licence_id = "LIC-M"\n').enroll(collector.url, token)
    return key, server_id


def test_the_settings_page_refuses_a_policy_below_the_promise_and_takes_an_override(
    collector: Collector, make_agent: Any, tmp_path: Path
) -> None:
    _, server_id = setup_partner(collector, make_agent, tmp_path)
    email = "admin@acme.example"
    password = collector.last_line("user", "add", email, "--partner", "acme", "--role", "admin")
    cookie = sign_in(collector, email, password)[1]
    assert cookie

    status, _, body = post_form(collector, "/settings/backup-policy", cookie, form(keep_last="3"))
    assert status == 409
    text = body.decode()
    assert "Backup policy refused" in text and BROKEN in text
    assert 'name="override_contract"' in text  # the override is offered, with a reason
    assert 'name="keep_last" type="number" min="0" value="3"' in text  # the form as sent
    # Nothing was stored: the server runs the promise, no override recorded.
    shown = policy(collector, server_id)
    assert (shown["keep_last"], shown["contract_override"]) == (7, None)

    # An empty reason is no override.
    refused = form(keep_last="3", override_contract="  ", override="1")
    assert post_form(collector, "/settings/backup-policy", cookie, refused)[0] == 409
    reason = "the customer keeps a second copy on site"
    override = form(keep_last="3", override_contract=reason, override="1")
    assert post_form(collector, "/settings/backup-policy", cookie, override)[0] == 303
    shown = policy(collector, server_id)
    assert (shown["keep_last"], shown["contract_override"]) == (3, reason)
    assert any("keep_last 3 is below the 7" in b for b in shown["breaks"])
    settings = page(collector, "/settings", cookie)[1].decode()
    assert f"runs below the contract's promise by override: {reason}" in settings

    # A policy that keeps every promise clears the override.
    assert post_form(collector, "/settings/backup-policy", cookie, form())[0] == 303
    assert policy(collector, server_id)["contract_override"] is None


def test_the_api_refuses_a_policy_below_the_promise_and_takes_an_override(
    collector: Collector, make_agent: Any, tmp_path: Path
) -> None:
    key, server_id = setup_partner(collector, make_agent, tmp_path)
    status, out = call(collector, key, "PUT", "/api/v1/backup-policy", {"interval": "2d"})
    assert status == 409 and out["error"] == "breaks_contract"
    # Every 2 days over the built-in default (keep last 3, daily 7, weekly 4, monthly 12).
    assert out["breaks"] == [
        f"server {server_id}: interval every 2d breaks the backup every 1d promised by "
        "contract C-1 (Maintenance & Support)",
        f"server {server_id}: keep_last 3 is below the 7 promised by contract C-1 "
        "(Maintenance & Support)",
    ]
    assert call(collector, key, "GET", "/api/v1/backup-policy")[1]["interval_s"] is None

    body = {"keep_daily": 8, "override_contract": "NAS"}
    status, out = call(collector, key, "PUT", "/api/v1/backup-policy", body)
    assert status == 200 and out["contract_override"] == "NAS"
    assert out["breaks"] == [
        f"server {server_id}: keep_last 3 is below the 7 promised by contract C-1 "
        "(Maintenance & Support)"
    ]
    shown = policy(collector, server_id)
    assert (shown["keep_last"], shown["keep_daily"], shown["contract_override"]) == (3, 8, "NAS")
    # The CLI sees the same record, and the same check refuses it there too.
    out_cli = collector.cli(
        "backup", "policy", "set", "--partner", "acme", "--keep-last", "2", check=False
    )
    assert "refused: this policy breaks the contract's promise" in out_cli

    status, out = call(collector, key, "PUT", "/api/v1/backup-policy", {"keep_last": 7})
    assert status == 200 and out["breaks"] == [] and out["contract_override"] is None
    assert (
        json.loads(collector.cli("backup", "policy", "show", "--server", server_id, "--json"))[
            "contract_override"
        ]
        is None
    )

    for bad, field in (
        ({"keep_last": -1}, "keep_last"),
        ({"keep_last": True}, "keep_last"),
        ({"interval": "soon"}, "interval"),
        ({"window": "25:00-26:00"}, "window"),
        ({"colour": "red"}, "colour"),
        ({"keep_last": 1, "override_contract": " "}, "override_contract"),
        ({"keep_last": 1, "override_contract": 5}, "override_contract"),
    ):
        status, out = call(collector, key, "PUT", "/api/v1/backup-policy", bad)
        assert status == 400 and out["field"] == field, (bad, out)
    for raw in ("[1]", "not json", '{"keep_last": NaN}'):
        status, _ = call(collector, key, "PUT", "/api/v1/backup-policy", raw)
        assert status in (400, 415), raw


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELDS = st.sampled_from(["interval", "window", "override_contract", *KEEP, "other"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(FIELDS, JSON, max_size=6) | JSON)
def test_any_body_is_a_policy_or_a_refusal_naming_the_field(body: Any) -> None:
    """Whatever a client sends, the API reads a policy or refuses it (400), never more."""
    try:
        policy, override = policy_from_json(body)
    except errors.Invalid as exc:
        assert exc.message
        return
    assert override is None or isinstance(override, str)
    for name in KEEP:
        value = getattr(policy, name)
        assert value is None or 0 <= value <= 100000
