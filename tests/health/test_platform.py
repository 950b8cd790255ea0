"""The agent's one platform module: its Linux side, and that nothing else in the agent
reaches past it to POSIX-only calls (so a Windows port replaces one module)."""

from __future__ import annotations

import ast
import os
import pwd
import subprocess
import time
from pathlib import Path

from agent import platform

AGENT = Path(__file__).resolve().parents[2] / "agent"
POSIX_ONLY_MODULES = {"fcntl", "pwd", "grp", "termios", "resource"}
POSIX_ONLY_CALLS = {"geteuid", "getuid", "killpg", "getpgid", "setsid", "chown"}


def test_locks_are_exclusive_and_seen_by_others(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    a = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    b = os.open(path, os.O_RDWR)
    try:
        assert platform.lock_exclusive(a)
        assert not platform.lock_exclusive(b), "a second holder is refused without waiting"
        assert platform.lock_is_held(b)
        platform.unlock(a)
        assert not platform.lock_is_held(b)
        assert platform.lock_exclusive(b)
    finally:
        os.close(a)
        os.close(b)


def test_private_files(tmp_path: Path) -> None:
    f = tmp_path / "secret"
    f.write_text("x")
    os.chmod(f, 0o644)
    assert platform.owned_by_me(f.stat())
    assert platform.open_to_others(f.stat()) == 0o044
    platform.make_private(f, directory=False)
    assert platform.open_to_others(f.stat()) == 0 and (f.stat().st_mode & 0o777) == 0o600
    platform.make_private(tmp_path, directory=True)
    assert (tmp_path.stat().st_mode & 0o777) == 0o700
    assert platform.owner_of(f.stat()) == f"uid {os.geteuid()}"
    assert platform.current_user() == pwd.getpwuid(os.geteuid()).pw_name


def test_user_and_group_names() -> None:
    assert platform.user_name(os.getuid()) == pwd.getpwuid(os.getuid()).pw_name
    assert platform.user_name(3_999_999) == "" and platform.group_name(3_999_999) == ""


def test_kill_tree_stops_the_child_and_what_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    proc = subprocess.Popen(
        ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], start_new_session=True
    )
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the grandchild never started"
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    platform.kill_tree(proc.pid)
    assert proc.wait(10) == -9
    deadline = time.monotonic() + 10
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived kill_tree"
        time.sleep(0.05)
    platform.kill_tree(proc.pid)  # already gone: no error


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_nothing_else_in_the_agent_reaches_past_the_platform_module() -> None:
    offenders = []
    for path in sorted(AGENT.rglob("*.py")):
        if path.parent == AGENT / "platform":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = {node.module.split(".")[0]}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                names = {node.attr} if node.value.id == "os" else set()
                if names & POSIX_ONLY_CALLS:
                    offenders.append(f"{path.relative_to(AGENT)}:{node.lineno} os.{node.attr}")
                continue
            else:
                continue
            for name in names & POSIX_ONLY_MODULES:
                offenders.append(f"{path.relative_to(AGENT)}:{node.lineno} import {name}")
    assert offenders == []
