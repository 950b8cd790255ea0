"""``vigil-agent doctor``: check everything an installer can get wrong, in plain words.

Each check prints ``ok``, ``warn`` or ``FAIL`` with what to do about it; the exit code is
1 if any check failed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass

from agent import config as agent_config
from agent.backup.recipient_pin import recipient_signer_check
from agent.client import CollectorClient, CollectorUnavailable, Refused, Revoked
from agent.identity import StateDirError, insecure_files, load_identity
from agent.spool import Spool
from agent.status_file import read_status

CLOCK_WARN_S = 5.0
CLOCK_FAIL_S = 120.0


@dataclass
class Check:
    level: str  # ok, warn, fail
    name: str
    text: str


async def run_checks(config_path: str | None) -> list[Check]:
    out: list[Check] = []
    try:
        cfg = agent_config.load(config_path)
    except agent_config.AgentConfigError as exc:
        return [Check("fail", "configuration", f"{exc}. Fix that line and run doctor again.")]
    out.append(Check("ok", "configuration", f"{cfg.source} is valid"))
    sd = cfg.state_dir
    if not sd.exists():
        out.append(
            Check("fail", "state directory", f"{sd} does not exist: run 'vigil-agent enroll' first")
        )
        return out
    if sd.stat().st_uid != os.geteuid():
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
    client = CollectorClient(ident.collector_url, ident.server_id, key)
    try:
        rtt, offset = await client.health()
        out.append(Check("ok", "collector", f"{ident.collector_url} answers ({rtt * 1000:.0f} ms)"))
        level = (
            "ok" if abs(offset) < CLOCK_WARN_S else "warn" if abs(offset) < CLOCK_FAIL_S else "fail"
        )
        words = f"this server's clock is {offset:+.1f} s from the collector's"
        if level != "ok":
            words += ": enable time synchronisation (NTP, e.g. 'timedatectl set-ntp true')"
        out.append(Check(level, "clock", words))
        try:
            await client.open_session()
            out.append(Check("ok", "credentials", "the collector accepts this agent's key"))
        except Revoked:
            out.append(
                Check(
                    "fail",
                    "credentials",
                    "the collector revoked this agent: ask the partner for a "
                    "new enrollment token and enroll again",
                )
            )
        except Refused as exc:
            out.append(
                Check(
                    "fail",
                    "credentials",
                    f"the collector refused this agent ({exc.code}: {exc.message})",
                )
            )
    except CollectorUnavailable as exc:
        out.append(
            Check("fail", "collector", f"{exc}: check the URL, DNS, firewall and proxy settings")
        )
    finally:
        await client.close()
    spool = Spool(sd / "spool", cfg.spool_max_bytes)
    st = read_status(sd)
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
    if not st.get("pid"):
        out.append(
            Check(
                "warn",
                "daemon",
                "the agent has not run yet: start it ('systemctl start vigil-agent')",
            )
        )
    elif not _alive(int(st["pid"])):
        out.append(Check("warn", "daemon", f"the agent (pid {st['pid']}) is not running"))
    else:
        out.append(Check("ok", "daemon", f"running as pid {st['pid']}"))
    if cfg.cameras is not None:
        out.extend(_camera_checks(cfg))
    return out


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
