"""``vigil-agent doctor``: check everything an installer can get wrong, in plain words.

Each check prints ``ok``, ``warn`` or ``FAIL`` with what to do about it; the exit code is
1 if any check failed.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import config as agent_config
from agent import platform
from agent.agent_key import AgentKey
from agent.backup.recipient_pin import recipient_signer_check
from agent.client import CollectorClient, CollectorUnavailable, Refused, Revoked
from agent.identity import Identity, StateDirError, insecure_files, load_identity
from agent.instance_lock import LOCK_FILE, lock_holder
from agent.spool import Spool
from agent.status_file import read_status
from protocol.messages import AgentSettings

CLOCK_WARN_S = 5.0
DEFAULT_CLOCK_LIMIT_S = 300
"""The collector's ``max_clock_skew_s`` when it does not say (older collectors)."""


@dataclass
class Check:
    level: str  # ok, warn, fail
    name: str
    text: str


async def run_checks(config_path: str | None) -> list[Check]:
    try:
        cfg = agent_config.load(config_path)
    except agent_config.AgentConfigError as exc:
        return [Check("fail", "configuration", f"{exc}. Fix that line and run doctor again.")]
    out = [_config_check(cfg, config_path)]
    if cfg.backup is not None:
        out.extend(backup_path_checks(cfg.backup.paths))
    sd = cfg.state_dir
    if not sd.exists():
        out.append(
            Check("fail", "state directory", f"{sd} does not exist: run 'vigil-agent enroll' first")
        )
        return out
    out.extend(_state_dir_checks(cfg))
    try:
        loaded = load_identity(sd)
    except (OSError, ValueError, StateDirError) as exc:
        out.append(
            Check("fail", "identity", f"cannot read the identity in {sd}: {exc}; enroll again")
        )
        return out
    if loaded is None:
        out.append(
            Check(
                "fail",
                "enrollment",
                "not enrolled: run 'vigil-agent enroll --collector URL --token TOKEN'",
            )
        )
        return out
    ident, key = loaded
    out.append(
        Check("ok", "enrollment", f"enrolled as {ident.server_id} with partner {ident.partner}")
    )
    out.append(Check(*recipient_signer_check(sd)))
    out.extend(await _collector_checks(ident, key, cfg.collector_proxy))
    st = read_status(sd)
    out.extend(_spool_checks(cfg, st))
    out.extend(_daemon_state_checks(sd, st))
    if cfg.cameras is not None:
        out.extend(_camera_checks(cfg))
    return out


def _config_check(cfg: agent_config.AgentConfig, config_path: str | None) -> Check:
    if config_path is None and not agent_config.DEFAULT_CONFIG.exists():
        # The daemon runs on defaults without the file; doctor does not pretend it exists.
        return Check(
            "fail",
            "configuration",
            f"{agent_config.DEFAULT_CONFIG} does not exist: write it (see "
            "agent.toml.example) or name another file with --config FILE",
        )
    return Check("ok", "configuration", f"{cfg.source} is valid")


def backup_path_checks(paths: tuple[str, ...] | list[str]) -> list[Check]:
    """One check per configured backup path: can this user read all of it? If not, the
    entries it cannot read (the first few) and the grant that fixes it."""
    user = platform.current_user()
    out = []
    roots: list[Path] = []
    for raw in paths:
        if any(c in raw for c in "*?["):
            matched = sorted(glob.glob(raw, recursive=True))
            if not matched:
                out.append(Check("warn", "backup path", f"{raw} matches nothing (yet)"))
            roots.extend(Path(m) for m in matched[:50])
        else:
            roots.append(Path(raw))
    for root in roots:
        problems = platform.unreadable_under(root)
        if not problems:
            out.append(Check("ok", "backup path", f"{root}: readable by {user}"))
            continue
        if problems[0].reason == "does not exist":
            out.append(Check("fail", "backup path", f"{root} does not exist: fix [backup] paths"))
            continue
        shown = "; ".join(f"{p.path} ({p.reason})" for p in problems[:3])
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        out.append(
            Check(
                "fail",
                "backup path",
                f"{user} cannot read {shown}{more}; grant read access as root: "
                + platform.grant_hint(root, problems, user),
            )
        )
    return out


def _state_dir_checks(cfg: agent_config.AgentConfig) -> list[Check]:
    """Owner, permissions and free space of the (existing) state directory."""
    out: list[Check] = []
    sd = cfg.state_dir
    if not platform.owned_by_me(sd.stat()):
        out.append(
            Check(
                "fail",
                "state directory",
                f"{sd} belongs to another user: chown it to the agent's user",
            )
        )
    bad = insecure_files(sd)
    if bad:
        out.append(Check("fail", "permissions", "; ".join(bad) + f": run 'chmod -R go-rwx {sd}'"))
    else:
        out.append(
            Check("ok", "permissions", f"{sd} and the identity are readable only by this user")
        )
    free = shutil.disk_usage(sd).free
    if free < cfg.spool_max_bytes:
        out.append(
            Check(
                "warn",
                "disk space",
                f"only {free // 2**20} MiB free where the spool lives "
                f"(spool may grow to {cfg.spool_max_bytes // 2**20} MiB)",
            )
        )
    return out


def _spool_checks(cfg: agent_config.AgentConfig, st: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    spool = Spool(cfg.state_dir / "spool", cfg.spool_max_bytes, readonly=True)
    if len(spool):
        out.append(
            Check(
                "warn",
                "spool",
                f"{len(spool)} report(s) waiting to be sent"
                + (f"; last error: {st['last_error']}" if st.get("last_error") else ""),
            )
        )
    else:
        out.append(Check("ok", "spool", "no reports waiting"))
    if spool.dropped_total:
        out.append(
            Check(
                "warn",
                "spool",
                f"{spool.dropped_total} report(s) were dropped when the spool was full",
            )
        )
    return out


def _daemon_state_checks(sd: Path, st: dict[str, Any]) -> list[Check]:
    """Whether the daemon runs, from its status file; its own checks when it does."""
    if not st.get("pid"):
        return [
            Check(
                "warn",
                "daemon",
                "the agent has not run yet: start it ('systemctl start vigil-agent')",
            )
        ]
    if not _running(sd, int(st["pid"])):
        why = f": it stopped because {st['exit_reason']}" if st.get("exit_reason") else ""
        return [
            Check(
                "fail" if why else "warn",
                "daemon",
                f"the agent (pid {st['pid']}) is not running{why}",
            )
        ]
    return [Check("ok", "daemon", f"running as pid {st['pid']}"), *_daemon_checks(st)]


async def _collector_checks(
    ident: Identity, key: AgentKey, proxy: str | None = None
) -> list[Check]:
    """Reachability (through ``proxy`` when configured), credentials, and the clock against
    the collector's own limit."""
    out: list[Check] = []
    settings: list[AgentSettings] = []
    client = CollectorClient(
        ident.collector_url, ident.server_id, key, on_settings=settings.append, proxy=proxy
    )
    try:
        rtt, offset = await client.health()
        via = f" through the proxy {proxy}" if proxy else ""
        out.append(
            Check("ok", "collector", f"{ident.collector_url} answers{via} ({rtt * 1000:.0f} ms)")
        )
        credentials = await _credentials_check(client)
        limit = settings[-1].max_clock_skew_s if settings else DEFAULT_CLOCK_LIMIT_S
        out.append(clock_check(-offset, limit, refused="(clock_skew:" in credentials.text))
        out.append(credentials)
    except CollectorUnavailable as exc:
        out.append(
            Check("fail", "collector", f"{exc}: check the URL, DNS, firewall and proxy settings")
        )
    finally:
        await client.close()
    return out


def clock_check(agent_minus_collector: float, limit_s: float, refused: bool = False) -> Check:
    """The same sign as ``vigil-agent status``: positive = this server's clock is ahead.
    ``refused``: the collector refused a session for the clock (``clock_skew``)."""
    n = abs(agent_minus_collector)
    side = "ahead of" if agent_minus_collector > 0 else "behind"
    words = f"agent clock is {n:.1f} s {side} the collector (collector's limit {limit_s:.0f} s)"
    if n < CLOCK_WARN_S and not refused:
        return Check("ok", "clock", words)
    level = "fail" if refused or n >= limit_s else "warn"
    if level == "fail":
        words += ": the collector refuses this agent's requests"
    return Check(
        level, "clock", words + ": enable time synchronisation (NTP, 'timedatectl set-ntp true')"
    )


async def _credentials_check(client: CollectorClient) -> Check:
    try:
        await client.open_session()
    except Revoked:
        return Check(
            "fail",
            "credentials",
            "the collector revoked this agent: ask the partner for a new enrollment token "
            "and enroll again ('vigil-agent enroll --force ...')",
        )
    except Refused as exc:
        if exc.code == "unknown_server":
            return Check(
                "fail",
                "credentials",
                "the collector does not know this agent (unknown_server; e.g. its database "
                "was recreated): ask the partner for a new enrollment token and enroll again "
                "('vigil-agent enroll --force ...')",
            )
        return Check(
            "fail", "credentials", f"the collector refused this agent ({exc.code}: {exc.message})"
        )
    return Check("ok", "credentials", "the collector accepts this agent's key")


def _daemon_checks(st: dict[str, Any]) -> list[Check]:
    """What the running daemon wrote down: tasks that are not running, a refusal."""
    out: list[Check] = []
    raw = st.get("tasks")
    tasks: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for name, task in sorted(tasks.items()):
        if isinstance(task, dict) and task.get("state") in ("restarting", "failed"):
            out.append(
                Check(
                    "fail",
                    "daemon",
                    f"task {name} is not running ({task.get('state')} after "
                    f"{task.get('failures')} failure(s); last: {task.get('last_error')}): "
                    "see the agent's log ('journalctl -u vigil-agent')",
                )
            )
    refusal = st.get("refusal")
    if isinstance(refusal, dict):
        out.append(
            Check(
                "fail",
                "daemon",
                f"the collector refuses this agent ({refusal.get('code')}) since "
                f"{_when(refusal.get('since'))}: enroll again",
            )
        )
    if st.get("held_in_memory"):
        out.append(
            Check(
                "warn",
                "spool",
                f"{st['held_in_memory']} report(s) held in memory: the spool cannot be written",
            )
        )
    return out


def _when(t: object) -> str:
    if not isinstance(t, (int, float)):
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _running(state_dir: Path, pid: int) -> bool:
    """The daemon holds the state directory's lock; without a lock file (an agent from
    before the lock), a live pid will do."""
    holder = lock_holder(state_dir)
    if holder is not None:
        return holder in (pid, -1)
    if (state_dir / LOCK_FILE).exists():
        return False
    return _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _camera_checks(cfg: agent_config.AgentConfig) -> list[Check]:
    devices = getattr(cfg.cameras, "devices", ())
    return [
        Check(
            "ok",
            "cameras",
            f"{len(devices)} camera(s) configured; check one with "
            "'vigil-agent probe onvif://USER:PASS@HOST:PORT'",
        )
    ]


def doctor(config_path: str | None) -> int:
    checks = asyncio.run(run_checks(config_path))
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[c.level]
        print(f"[{mark}] {c.name:{width}}  {c.text}")
    failed = sum(c.level == "fail" for c in checks)
    print(
        "\nAll checks passed."
        if not failed
        else f"\n{failed} check(s) failed: fix them as described above."
    )
    return 1 if failed else 0
