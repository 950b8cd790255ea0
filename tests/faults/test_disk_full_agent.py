"""A full disk on the recording server: reports wait in memory and reach the spool, in
order and with their own sequence numbers, once there is room again."""

from __future__ import annotations

import asyncio
import errno
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import parse
from agent.daemon import Agent
from agent.identity import Identity


def test_reports_survive_a_full_disk(tmp_path: Path) -> None:
    cfg = parse({"agent": {"state_dir": str(tmp_path / "state")}}, "agent.toml")
    ident = Identity("srv_x", "http://127.0.0.1:9", "p", 0.0, "")
    agent = Agent(cfg, ident, Ed25519PrivateKey.generate())
    real_append = agent.spool.append
    full = {"on": True}

    def append(seq: int, data: bytes) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(seq, data)

    agent.spool.append = append  # type: ignore[method-assign]

    async def go() -> None:
        for _ in range(3):
            await agent.collect()
        assert len(agent.spool) == 0 and len(agent._held) == 3
        assert "cannot write the spool" in agent.status["last_error"]
        full["on"] = False
        await agent.collect()
        await agent.client.close()

    asyncio.run(go())
    entries = agent.spool.peek(10, 1 << 30)
    assert [seq for seq, _ in entries] == [1, 2, 3, 4]
    assert [json.loads(d)["seq"] for _, d in entries] == [1, 2, 3, 4]
    assert not agent._held
