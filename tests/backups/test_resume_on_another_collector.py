"""An upload started through one collector process, which is then killed with SIGKILL, is
resumed and completed through another process with a different data directory (another
machine, as far as it can tell), sharing only the database and the S3 bucket (moto's
server on 127.0.0.1). The backup is stored verified, and ``vigil-backup`` restores the
very bytes the agent had."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from harness.backup_runs import run_backups
from harness.processes import BIN, Collector
from harness.s3 import new_bucket, s3_client, s3_config, storage_toml
from tests.backups.archive_helpers import snapshot
from tests.backups.test_real_collector import _cli

MIB = 1 << 20


def _config(tmp_path: Path, bucket_config: dict) -> Path:
    """One configuration for both processes: the bucket, and the database (the test's
    PostgreSQL database from the environment, else one SQLite file both open)."""
    storage = ""
    if not os.environ.get("VIGIL_STORAGE_URL"):
        (tmp_path / "shared").mkdir()
        storage = f'[storage]\npath = "{tmp_path / "shared" / "vigil.db"}"\n'
    path = tmp_path / "collector.toml"
    path.write_text(storage + storage_toml(bucket_config))
    return path


def _staged(endpoint: str, bucket: str) -> list[str]:
    client = s3_client(endpoint)
    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix="vigil/test/_staging/")
        return [o["Key"] for o in listed.get("Contents", [])]
    finally:
        client.close()


def test_upload_resumes_on_another_process_after_sigkill(
    tree: Path, tmp_path: Path, moto_endpoint: str
) -> None:
    bucket = new_bucket(moto_endpoint)
    config = _config(tmp_path, s3_config(moto_endpoint, bucket))
    first = Collector(tmp_path / "a", config=config).start()
    second = Collector(tmp_path / "b", port=first.port, config=config)
    try:
        _run(tree, tmp_path, first, second, moto_endpoint, bucket)
    finally:
        first.stop()
        second.stop()


def _run(
    tree: Path, tmp_path: Path, first: Collector, second: Collector, endpoint: str, bucket: str
) -> None:
    api_key, token = first.partner("acme")
    key_file = tmp_path / "recovery.key"
    recipient = _cli(str(BIN / "vigil-backup"), "keygen", "--out", str(key_file))
    first.cli("recovery-key", "add", "--partner", "acme", recipient)
    first.cli("backup", "policy", "set", "--partner", "acme", "--interval", "24h")
    (tree / "blob.bin").write_bytes(os.urandom(40 * MIB))  # five 8 MiB chunks
    agent_config = tmp_path / "agent.toml"
    agent_config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "agent"}"\n[backup]\npaths = ["{tree}"]\n'
    )
    _cli(
        str(BIN / "vigil-agent"),
        "enroll",
        "--collector",
        first.url,
        "--token",
        token,
        "--config",
        str(agent_config),
    )

    from agent.client import CollectorClient
    from agent.config import load
    from agent.identity import load_identity

    cfg = load(agent_config)
    identity, _ = load_identity(cfg.state_dir)  # type: ignore[misc]
    seen: dict[str, object] = {"puts": []}

    class KillAndFailOver(CollectorClient):
        """SIGKILLs process A right after the second chunk is acknowledged; starts
        process B on the same address on the second request after that (the first one
        fails, as it would)."""

        async def request(
            self, method, path, body=b"", content_type="application/json", params=None, **kw
        ):
            if seen.get("killed") and not seen.get("failed_over"):
                seen["failed_requests"] = int(seen.get("failed_requests", 0)) + 1
                if seen["failed_requests"] >= 2:
                    await asyncio.to_thread(second.start)
                    seen["failed_over"] = True
                    seen["listed_on_b"] = second.api(
                        api_key, f"/api/v1/servers/{identity.server_id}/backups"
                    )[1]["backups"]
            if method == "PUT":
                seen["puts"].append(int(params["offset"]))  # type: ignore[union-attr]
            resp = await super().request(method, path, body, content_type, params, **kw)
            if method == "PUT" and len(seen["puts"]) == 2 and not seen.get("killed"):
                first.kill()
                seen["killed"] = True
                seen["staged_at_kill"] = _staged(endpoint, bucket)
            return resp

    async def backup() -> str:
        (out,) = await run_backups(
            agent_config, KillAndFailOver, retry_delays=(0.1, 0.1, 0.5, 1.0, 2.0)
        )
        return out.outcome + " " + out.reason

    assert asyncio.run(backup()).startswith("ok")
    assert seen["killed"] and seen["failed_over"]
    assert len(seen["staged_at_kill"]) == 2  # type: ignore[arg-type]
    assert not list((first.data_dir / "uploads").glob("*"))  # nothing staged on A's disk
    assert seen["listed_on_b"] == []  # the partial upload is never listed
    puts = seen["puts"]
    assert puts[:2] == [0, 8 * MIB]  # type: ignore[index]
    assert puts[2] == 16 * MIB, puts  # type: ignore[index]  # resumed where A acknowledged
    status, listed = second.api(api_key, f"/api/v1/servers/{identity.server_id}/backups")
    assert status == 200
    assert [(b["kind"], b["status"]) for b in listed["backups"]] == [("full", "verified")]
    assert _staged(endpoint, bucket) == []  # staged chunks removed once stored

    env = dict(os.environ, VIGIL_COLLECTOR=second.url, VIGIL_API_KEY=api_key)
    vb = str(BIN / "vigil-backup")
    verify = subprocess.run(
        [vb, "verify", "--server", identity.server_id, "--identity", str(key_file)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert verify.returncode == 0, verify.stderr
    dest = tmp_path / "restored"
    args = ["--server", identity.server_id, "--identity", str(key_file), "--to", str(dest)]
    restored = subprocess.run(
        [vb, "restore", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert restored.returncode == 0, restored.stderr
    back = dest / tree.relative_to("/")
    assert (back / "blob.bin").read_bytes() == (tree / "blob.bin").read_bytes()
    assert snapshot(back) == snapshot(tree)
