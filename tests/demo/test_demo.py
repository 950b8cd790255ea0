"""`make demo` as a new user runs it: everything starts, a second demo leaves the first alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "packaging" / "demo.py"


def _start(data: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "VIGIL_DEMO_DATA": str(data)}
    return subprocess.Popen(
        [sys.executable, str(DEMO)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C, and the demo's output once it stopped (what was left running, if not)."""
    proc.send_signal(signal.SIGINT)
    try:
        # Each process has 15 s after its SIGTERM before it is killed; a busy machine
        # may need most of that, and the test is about the order, not the speed.
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        left = subprocess.run(
            ["ps", "--ppid", str(proc.pid), "-o", "pid,args"], text=True, capture_output=True
        ).stdout
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"the demo did not stop on Ctrl-C\n{status}\nchildren:\n{left}\n{out}\n{err[-3000:]}"
        ) from None
    return out


def _read_until_ready(proc: subprocess.Popen[str], seconds: float = 120) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return lines
    proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    raise AssertionError(f"demo did not get ready:\n{chr(10).join(lines)}\n{err}")


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_demo_runs_and_a_second_demo_leaves_it_alone(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    first = _start(data)
    try:
        lines = _read_until_ready(first)
        text = "\n".join(lines)
        assert "Fleet view:" in text and "API key:" in text
        agent_status = subprocess.run(
            [
                str(Path(sys.executable).parent / "vigil-agent"),
                "status",
                "--json",
                "--config",
                str(data / "agent" / "agent.toml"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert agent_status.returncode == 0, agent_status.stderr
        pin = json.loads(agent_status.stdout)["recovery_signer"]
        assert pin["pinned"] is True, pin
        assert (data / "partner" / "recovery.key").exists()
        assert f"Data:        {data / 'collector'}" in text
        assert f"servers --data {data / 'collector'}" in text
        # The simulated cameras with faults are down: the demo's own receivers hear of it.
        hooks = data / "notifications" / "webhooks.jsonl"
        assert f"Webhooks:    {hooks}" in text
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "camera.down" not in _text(hooks):
            time.sleep(0.5)
        got = [json.loads(line) for line in _text(hooks).splitlines()]
        assert "camera.down" in [h["body"]["type"] for h in got], got
        assert all(h["headers"]["webhook-signature"].startswith("v1,") for h in got)
        mails = sorted((data / "notifications" / "mail").glob("*.eml"))
        while time.monotonic() < deadline and not mails:
            time.sleep(0.5)
            mails = sorted((data / "notifications" / "mail").glob("*.eml"))
        assert b"What to do:" in mails[0].read_bytes()
        marker = data / "collector" / "still-here"
        marker.write_text("x")

        second = subprocess.run(
            [sys.executable, str(DEMO)],
            capture_output=True,
            text=True,
            env={**os.environ, "VIGIL_DEMO_DATA": str(data)},
            timeout=60,
        )
        assert second.returncode == 1
        assert f"already running (pid {first.pid})" in second.stderr
        assert marker.exists(), "the second demo must not delete the running demo's data"
        assert first.poll() is None, "the first demo must keep running"
    finally:
        out = _stop(first)
    assert first.returncode == 0
    assert "stopped collector (exit 0)" in out
    assert not (data / "demo.pid").exists()
