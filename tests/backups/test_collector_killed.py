"""The collector killed with SIGKILL in the middle of an upload: the agent's run resumes
after it comes back, from the offset the collector kept, and no partial backup is listed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.request
from pathlib import Path

from harness.backup_runs import run_backups
from harness.processes import BIN, Collector
from tests.backups.test_real_collector import _cli


def test_collector_sigkill_mid_upload(tree: Path, tmp_path: Path) -> None:
    col = Collector(tmp_path / "collector").start()
    try:
        vc, data = str(BIN / "vigil-collector"), str(col.data_dir)
        _cli(vc, "partner", "add", "acme", "--data", data)
        token = _cli(vc, "token", "create", "--partner", "acme", "--data", data)
        api_key = _cli(vc, "apikey", "create", "--partner", "acme", "--data", data)
        key_file = tmp_path / "recovery.key"
        recipient = _cli(str(BIN / "vigil-backup"), "keygen", "--out", str(key_file))
        _cli(vc, "recovery-key", "add", "--partner", "acme", recipient, "--data", data)
        _cli(
            vc, "backup", "policy", "set", "--partner", "acme", "--interval", "24h", "--data", data
        )
        (tree / "blob.bin").write_bytes(os.urandom(40 << 20))  # five 8 MiB chunks
        config = tmp_path / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{tmp_path / "agent"}"\n[backup]\npaths = ["{tree}"]\n'
        )
        _cli(
            str(BIN / "vigil-agent"),
            "enroll",
            "--collector",
            col.url,
            "--token",
            token,
            "--config",
            str(config),
        )

        from agent.client import CollectorClient
        from agent.config import load
        from agent.identity import load_identity

        cfg = load(config)
        identity, _ = load_identity(cfg.state_dir)  # type: ignore[misc]

        def partner_list() -> list[dict]:
            req = urllib.request.Request(
                f"{col.url}/api/v1/servers/{identity.server_id}/backups",
                headers={"Authorization": f"Bearer {api_key}"},
            )
            return json.loads(urllib.request.urlopen(req).read())["backups"]

        seen: dict[str, object] = {"puts": []}

        class Killing(CollectorClient):
            """Kills the collector right after the second chunk is acknowledged; brings it
            back on the second request after that (the first one fails, as it would)."""

            async def request(
                self, method, path, body=b"", content_type="application/json", params=None, **kw
            ):
                if seen.get("killed") and not seen.get("restarted"):
                    seen["failed_requests"] = int(seen.get("failed_requests", 0)) + 1
                    if seen["failed_requests"] >= 2:
                        await asyncio.to_thread(col.start)
                        seen["restarted"] = True
                        seen["listed_after_restart"] = await asyncio.to_thread(partner_list)
                if method == "PUT":
                    seen["puts"].append(int(params["offset"]))  # type: ignore[union-attr]
                resp = await super().request(method, path, body, content_type, params, **kw)
                if method == "PUT" and len(seen["puts"]) == 2 and not seen.get("killed"):
                    col.kill()
                    seen["killed"] = True
                return resp

        async def backup() -> str:
            (out,) = await run_backups(config, Killing, retry_delays=(0.1, 0.1, 0.5, 1.0, 2.0))
            return out.outcome + " " + out.reason

        assert asyncio.run(backup()).startswith("ok")
        assert seen["killed"] and seen["restarted"]
        assert seen["listed_after_restart"] == []  # the partial upload is never listed
        puts = seen["puts"]
        assert puts[:2] == [0, 8 << 20]
        resumed_at = puts[2]
        assert resumed_at > 0, puts  # resumed where the collector stopped, not from zero
        backups = partner_list()
        assert [b["kind"] for b in backups] == ["full"]
        env = dict(os.environ, VIGIL_COLLECTOR=col.url, VIGIL_API_KEY=api_key)
        verify = subprocess.run(
            [
                str(BIN / "vigil-backup"),
                "verify",
                "--server",
                identity.server_id,
                "--identity",
                str(key_file),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert verify.returncode == 0, verify.stderr
    finally:
        col.stop()
