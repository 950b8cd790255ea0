"""End to end with the real collector (``vigil-collector serve`` on 127.0.0.1): the agent's
runner with the real ``CollectorClient`` backs up, an unchanged run is recorded, and the
stored backup is restored by ``vigil-backup`` and, without Vigil, by stock
``age -d | zstd -d | tar -x``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.request
from pathlib import Path

from harness.backup_runs import run_backups
from harness.processes import BIN, Collector
from tests.backups.archive_helpers import snapshot


def _cli(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def test_backup_through_real_collector(collector: Collector, tree: Path, tmp_path: Path) -> None:
    url, data = collector.url, collector.data_dir
    vc = str(BIN / "vigil-collector")
    _cli(vc, "partner", "add", "acme", "--data", str(data))
    token = _cli(vc, "token", "create", "--partner", "acme", "--data", str(data))
    api_key = _cli(vc, "apikey", "create", "--partner", "acme", "--data", str(data))
    key_file = tmp_path / "recovery.key"
    recipient = _cli(str(BIN / "vigil-backup"), "keygen", "--out", str(key_file))
    _cli(vc, "recovery-key", "add", "--partner", "acme", recipient, "--data", str(data))
    _cli(
        vc, "backup", "policy", "set", "--partner", "acme", "--interval", "24h", "--data", str(data)
    )
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "agent"}"\n[backup]\npaths = ["{tree}"]\n'
    )
    _cli(
        str(BIN / "vigil-agent"),
        "enroll",
        "--collector",
        url,
        "--token",
        token,
        "--config",
        str(config),
    )

    from agent.config import load
    from agent.identity import load_identity

    loaded = load_identity(load(config).state_dir)
    assert loaded is not None
    identity, _ = loaded

    outcomes = asyncio.run(run_backups(config, runs=2))
    assert [o.outcome for o in outcomes] == ["ok", "unchanged"]

    env = dict(os.environ, VIGIL_COLLECTOR=url, VIGIL_API_KEY=api_key)
    server = identity.server_id
    vb = str(BIN / "vigil-backup")
    listing = subprocess.run(
        [vb, "list", "--server", server, "--json"], capture_output=True, text=True, env=env
    )
    backups = json.loads(listing.stdout)["backups"]
    assert sorted(b["kind"] for b in backups) == ["full", "unchanged"]
    dest = tmp_path / "restored"
    restored = subprocess.run(
        [vb, "restore", "--server", server, "--identity", str(key_file), "--to", str(dest)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert restored.returncode == 0, restored.stderr
    assert snapshot(dest / tree.relative_to("/")) == snapshot(tree)

    # without Vigil: the stored object, stock age, zstd and tar
    full = next(b for b in backups if b["kind"] == "full")
    req = urllib.request.Request(
        f"{url}/api/v1/servers/{server}/backups/{full['id']}/object",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    (tmp_path / "stored.age").write_bytes(urllib.request.urlopen(req).read())
    stock = tmp_path / "stock"
    stock.mkdir()
    subprocess.run(
        f"age -d -i {key_file} {tmp_path / 'stored.age'} | zstd -d | tar -x -p -f - -C {stock}",
        shell=True,
        check=True,
    )
    rel = tree.relative_to("/")
    assert snapshot(stock / rel, exact_mtime=False) == snapshot(tree, exact_mtime=False)
