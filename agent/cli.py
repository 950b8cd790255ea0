"""``vigil-agent``: enroll, run, and check the agent on a recording server."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import config as agent_config
from agent.agent_key import AgentKey
from agent.backup.recipient_pin import (
    Pin,
    RecipientsRefused,
    load_pin,
    save_pin,
    split_token,
)
from agent.identity import (
    Identity,
    StateDirError,
    ensure_state_dir,
    hostname,
    load_identity,
    machine_id,
    save_identity,
)
from agent.spool import Spool
from agent.status_file import read_status
from protocol import log_format, recipient_list
from protocol import request_auth as ra
from protocol.messages import EnrollRequest
from protocol.version import PROTOCOL_VERSION

if TYPE_CHECKING:
    from agent.client import Refused


def _err(message: str, code: int = 1) -> int:
    print(f"vigil-agent: {message}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace) -> agent_config.AgentConfig:
    return agent_config.load(args.config)


def cmd_enroll(args: argparse.Namespace) -> int:
    # Imported here: the HTTP client (aiohttp) and the host probes (psutil) are for enrolling
    # and running, not for status, doctor or the backup commands.
    from agent.client import CollectorUnavailable, Refused
    from agent.client import enroll as enroll_request
    from agent.enroll_seed import SeedError, resolve
    from protocol.collector_url import CollectorUrlError, check_collector_url

    try:
        source = resolve(args.collector, args.token, args.seed)
    except SeedError as exc:
        return _err(str(exc), 2)
    args.collector, args.token = source.collector, source.token
    try:
        args.collector = check_collector_url(args.collector)
    except CollectorUrlError as exc:
        return _err(str(exc), 2)
    cfg = _load(args)
    ensure_state_dir(cfg.state_dir)
    existing = load_identity(cfg.state_dir)
    if existing is not None and not args.force:
        ident = existing[0]
        return _err(
            f"already enrolled as {ident.server_id} with {ident.collector_url}; "
            "use --force to enroll again (the old key stops working)"
        )
    try:
        signer = _recovery_signer(args)
    except recipient_list.RecipientListError as exc:
        return _err(str(exc), 2)
    token, _ = split_token(args.token)
    key = AgentKey.generate()
    pub = key.public_bytes_raw()
    req = _enroll_body(cfg, token, pub)
    try:
        resp = asyncio.run(enroll_request(args.collector, req, proxy=cfg.collector_proxy))
    except CollectorUnavailable as exc:
        return _err(f"{exc}; check the collector URL and the network")
    except Refused as exc:
        return _err(_enroll_refusal(args.collector, exc))
    ident = Identity(
        resp.server_id, args.collector.rstrip("/"), resp.partner, time.time(), ra.b64(pub)
    )
    save_identity(cfg.state_dir, ident, key)
    if signer is not None:
        save_pin(cfg.state_dir, Pin(fingerprint=signer))
    print(
        f"enrolled {req.hostname} as {resp.server_id} with partner {resp.partner} "
        f"at {ident.collector_url}"
    )
    print(f"this server's signing key fingerprint: {recipient_list.fingerprint(pub)}")
    print(_signer_line(cfg.state_dir))
    if source.seed_path is not None:
        _delete_seed(source.seed_path)
    print(
        f"identity kept in {cfg.state_dir} (readable only by this user); "
        "start the agent with 'vigil-agent run'"
    )
    return 0


def _enroll_body(cfg: agent_config.AgentConfig, token: str, pub: bytes) -> EnrollRequest:
    from agent.health.host import agent_version, os_name

    return EnrollRequest(
        protocol=PROTOCOL_VERSION,
        token=token,
        public_key=ra.b64(pub),
        hostname=hostname(cfg.hostname),
        machine_id=machine_id(cfg.state_dir, cfg.machine_id),
        licence_id=cfg.licence_id,
        agent_version=agent_version(),
        os=os_name(),
    )


def _enroll_refusal(collector: str, exc: Refused) -> str:
    if exc.status in (404, 405) and not exc.code:
        return (
            f"{collector} answered {exc.status} to the enrollment request: it does not "
            "look like a Vigil collector; check the URL (host and port of the collector)"
        )
    return f"the collector refused enrollment: {exc.message}"


def _delete_seed(path: Path) -> None:
    """The seed's token is spent: remove the file, or say it should go."""
    try:
        path.unlink()
    except OSError as exc:
        print(f"warning: could not delete the seed file {path} ({exc.strerror}): delete it")
    else:
        print(f"deleted the seed file {path}")


def _recovery_signer(args: argparse.Namespace) -> str | None:
    """The partner's signing-key fingerprint from ``--recovery-signer`` or the token's
    ``#FP`` suffix (both given: they must agree)."""
    _, from_token = split_token(args.token)
    flag = args.recovery_signer and recipient_list.normalize_fingerprint(args.recovery_signer)
    if flag and from_token and flag != from_token:
        raise recipient_list.RecipientListError(
            "--recovery-signer and the fingerprint after '#' in the token differ"
        )
    return flag or from_token


def _signer_line(state_dir: Path) -> str:
    try:
        pin = load_pin(state_dir)
    except RecipientsRefused as exc:
        return f"WARNING: {exc}"
    if pin is None:
        return (
            "warning: no partner signing key pinned: backups are encrypted to whatever "
            "recipients the collector names (pin it: vigil-agent recovery-signer FINGERPRINT)"
        )
    return f"backups are encrypted only to recipients signed by partner key {pin.fingerprint}"


def cmd_recovery_signer(args: argparse.Namespace) -> int:
    """Show, or pin on this machine, the partner's recipient-signing key (for an enrollment
    made without one, or when the partner replaced its key)."""
    cfg = _load(args)
    if load_identity(cfg.state_dir) is None:
        return _err("not enrolled: run 'vigil-agent enroll' first", 2)
    if args.fingerprint:
        try:
            fp = recipient_list.normalize_fingerprint(args.fingerprint)
            old = load_pin(cfg.state_dir)
        except recipient_list.RecipientListError as exc:
            return _err(str(exc), 2)
        except RecipientsRefused:
            old = None  # a damaged pin file is replaced
        if old is None or old.fingerprint != fp:
            save_pin(cfg.state_dir, Pin(fingerprint=fp))
    print(_signer_line(cfg.state_dir))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args)
    level = getattr(logging, (args.log_level or cfg.log_level).upper())
    log_format.configure(cfg.log_format, level)
    if level > logging.DEBUG:
        # APScheduler logs "Running job…" and "…executed successfully" at INFO for every
        # run of every job: four lines a minute that say nothing. Its warnings stay.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    ensure_state_dir(cfg.state_dir)
    loaded = load_identity(cfg.state_dir)
    if loaded is None:
        return _err(
            f"not enrolled (no identity in {cfg.state_dir}): "
            "run 'vigil-agent enroll --collector URL --token TOKEN' first",
            2,
        )
    from agent.daemon import Agent
    from agent.instance_lock import AlreadyRunning, hold_instance_lock

    try:
        lock = hold_instance_lock(cfg.state_dir)
    except AlreadyRunning as exc:
        return _err(str(exc), 3)
    try:
        agent = Agent(cfg, *loaded, report_now=args.report_now)
        return asyncio.run(agent.run())
    finally:
        os.close(lock)


def status_data(cfg: agent_config.AgentConfig) -> dict[str, object]:
    loaded = load_identity(cfg.state_dir) if cfg.state_dir.exists() else None
    st = read_status(cfg.state_dir)
    spool = (
        Spool(cfg.state_dir / "spool", cfg.spool_max_bytes, readonly=True)
        if cfg.state_dir.exists()
        else None
    )
    ident = loaded[0] if loaded else None
    return {
        "enrolled": ident is not None,
        "server_id": ident.server_id if ident else None,
        "collector": ident.collector_url if ident else None,
        "partner": ident.partner if ident else None,
        "signing_key_fingerprint": (
            recipient_list.fingerprint(ra.unb64(ident.public_key)) if ident else None
        ),
        "recovery_signer": _pin_status(cfg) if ident else None,
        "state_dir": str(cfg.state_dir),
        "running_pid": st.get("pid"),
        "last_success_at": st.get("last_success_at"),
        "last_error": st.get("last_error"),
        "last_error_at": st.get("last_error_at"),
        "revoked": bool(st.get("revoked")),
        "refusal": st.get("refusal"),
        "tasks": st.get("tasks") or {},
        "held_in_memory": st.get("held_in_memory") or 0,
        "clock_offset_s": st.get("clock_offset_s"),
        "exit_reason": st.get("exit_reason"),
        "next_report_at": st.get("next_report_at"),
        "last_report_seq": st.get("last_report_seq"),
        "spool": {
            "reports": len(spool) if spool is not None else 0,
            "bytes": spool.bytes if spool is not None else 0,
            "oldest_seq": spool.oldest_seq() if spool is not None else None,
            "oldest_at": spool.oldest_mtime() if spool is not None else None,
            "dropped_total": spool.dropped_total if spool is not None else 0,
        },
        "settings": st.get("settings"),
        "cameras": None if cfg.cameras is None else (st.get("cameras") or {}),
        "disks": st.get("disks"),
        "backup": st.get("backup") or _saved_backup_state(cfg),
    }


def _pin_status(cfg: agent_config.AgentConfig) -> dict[str, object]:
    try:
        pin = load_pin(cfg.state_dir)
    except RecipientsRefused as exc:
        return {"pinned": False, "fingerprint": None, "message": str(exc)}
    return {
        "pinned": pin is not None,
        "fingerprint": pin.fingerprint if pin else None,
        "message": _signer_line(cfg.state_dir),
    }


def _saved_backup_state(cfg: agent_config.AgentConfig) -> dict[str, object] | None:
    """The last backup run as saved on disk, when the daemon has not said more."""
    if cfg.backup is None or not cfg.state_dir.exists():
        return None
    import msgspec

    from agent.backup.runner import load_state

    state = msgspec.to_builtins(load_state(cfg.state_dir))
    state.pop("unreported", None)
    return state


def _when(t: object) -> str:
    if not isinstance(t, (int, float)):
        return "never"
    age = int(time.time() - t)
    shown = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    # A time ahead of this clock (the file was written by a clock set later) says so.
    return f"{shown} ({age} s ago)" if age >= 0 else f"{shown} (in {-age} s)"


def _print_problems(data: dict[str, Any]) -> None:
    """The status lines that say what is wrong: errors, refusals, tasks down, exit reason."""
    if data["last_error"]:
        print(f"last error   {data['last_error']} at {_when(data['last_error_at'])}")
    refusal = data.get("refusal")
    if data["revoked"]:
        print("REVOKED      the collector revoked this agent's credentials: enroll again")
    if isinstance(refusal, dict):
        print(
            f"refused      {refusal.get('code')}: {refusal.get('message')} "
            f"(since {_when(refusal.get('since'))}); "
            + (
                "no new reports are collected; "
                if refusal.get("code") == "revoked"
                else "reports are kept; "
            )
            + "enroll again ('vigil-agent enroll --force ...')"
        )
    tasks = data.get("tasks")
    for name, task in sorted(tasks.items()) if isinstance(tasks, dict) else ():
        if isinstance(task, dict) and task.get("state") in ("restarting", "failed"):
            print(
                f"TASK DOWN    {name}: {task.get('state')} after {task.get('failures')} "
                f"failure(s); last: {task.get('last_error')}"
            )
    if data.get("exit_reason"):
        print(f"stopped      because {data['exit_reason']}")


def _print_cameras(cameras: object) -> None:
    """One line for the last probe cycle, then one per camera."""
    if not isinstance(cameras, dict):
        print("cameras      none configured" if cameras is None else "cameras      —")
        return
    counts = cameras.get("by_verdict") or {}
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "none"
    print(f"cameras      {summary}; probed {_when(cameras.get('probed_at'))}")
    for cam in cameras.get("list") or []:
        if not isinstance(cam, dict):
            continue
        line = f"  {cam.get('key')!s:<16} {cam.get('verdict')!s:<12} {cam.get('address')}"
        if cam.get("name"):
            line += f" ({cam['name']})"
        if cam.get("reason"):
            line += f": {cam['reason']}"
        print(line)


def _print_backup(backup: object) -> None:
    """Backups: configured or not, the last run, the next one, an upload waiting."""
    if not isinstance(backup, dict):
        print("backups      none configured")
        return
    if backup.get("running"):
        print("backup       running now")
    if backup.get("last_outcome"):
        line = f"last backup  {backup['last_outcome']} at {_when(backup.get('last_run_at'))}"
        if backup["last_outcome"] == "failed" and backup.get("last_reason"):
            line += f": {backup['last_reason']}"
        print(line)
    else:
        print("last backup  never")
    if backup.get("last_success_at"):
        print(f"last stored  {_when(backup['last_success_at'])} (seq {backup.get('last_seq')})")
    due = backup.get("scheduled_at") or backup.get("next_due")
    if isinstance(due, (int, float)):
        print(f"next backup  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(due))}")
    elif backup.get("entitled") is False:
        print("next backup  — (this server is not entitled to backups)")
    pending = backup.get("pending_upload")
    if isinstance(pending, dict):
        print(f"upload       #{pending.get('seq')} waiting at {pending.get('offset')} bytes")


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load(args)
    data = status_data(cfg)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    if not data["enrolled"]:
        print(f"not enrolled (state directory {cfg.state_dir})")
        return 1
    sp = data["spool"]
    assert isinstance(sp, dict)
    print(f"server       {data['server_id']} (partner {data['partner']})")
    print(f"collector    {data['collector']}")
    print(f"signing key  {data['signing_key_fingerprint']}")
    signer = data.get("recovery_signer")
    if isinstance(signer, dict):
        print(f"recipients   {signer['message']}")
    print(f"last sent    {_when(data['last_success_at'])}")
    _print_problems(data)
    offset = data.get("clock_offset_s")
    if isinstance(offset, (int, float)):
        side = "ahead of" if offset > 0 else "behind"
        print(f"clock        agent clock is {abs(offset):.1f} s {side} the collector")
    nxt = data["next_report_at"]
    print(
        "next report  "
        + (time.strftime("%H:%M:%S", time.localtime(nxt)) if isinstance(nxt, float) else "—")
    )
    print(
        f"spool        {sp['reports']} report(s), {sp['bytes']} bytes; "
        f"oldest {_when(sp['oldest_at'])}; "
        f"dropped {sp['dropped_total']}"
        + (f"; {data['held_in_memory']} held in memory" if data.get("held_in_memory") else "")
    )
    _print_cameras(data.get("cameras"))
    disks = data.get("disks")
    if isinstance(disks, dict) and isinstance(disks.get("by_health"), dict):
        counts = ", ".join(f"{n} {h}" for h, n in sorted(disks["by_health"].items()))
        print(f"disks        {counts or 'none found'} (SMART, {_when(disks.get('checked_at'))})")
    _print_backup(data.get("backup"))
    settings = data.get("settings") or {}
    if isinstance(settings, dict) and settings.get("notice"):
        print(f"notice       {settings['notice']}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent.doctor import doctor

    return doctor(args.config)


def cmd_probe(args: argparse.Namespace) -> int:
    from agent.cameras.probe_command import run_probe

    settings = None
    if args.config is not None:
        # Only an explicit --config: a bare probe on an installer's laptop needs no file.
        cfg = _load(args)
        settings = cfg.cameras
    return asyncio.run(run_probe(args.url, args.json, args.timeout, settings=settings))


def cmd_backup(args: argparse.Namespace) -> int:
    if not args.now:
        return _err("say 'vigil-agent backup --now' to run a backup now", 2)
    from agent.backup.command import backup_now

    return backup_now(_load(args), as_json=args.json)


# Longer than 60 lines: one flat declaration per command and flag, read like --help.
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil-agent", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"configuration file (default {agent_config.DEFAULT_CONFIG})",
    )
    # Accepted before the command too (`vigil-agent --config FILE status`); after it wins.
    parser.add_argument("--config", dest="config_before", metavar="FILE", help="as after it")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _enroll_commands(sub, common)
    _running_commands(sub, common)
    return parser


def _enroll_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """enroll, recovery-signer: the server's identity and the partner's pinned key."""
    p = sub.add_parser("enroll", parents=[common], help="enroll with a one-time token")
    p.add_argument(
        "--collector", metavar="URL", help="collector URL (default: $VIGIL_COLLECTOR, the seed)"
    )
    p.add_argument(
        "--token",
        help="enrollment token; 'vgl_enr_…#FINGERPRINT' also pins the partner's signing key "
        "(default: $VIGIL_ENROLL_TOKEN, the seed)",
    )
    p.add_argument(
        "--seed",
        metavar="FILE",
        help='TOML seed with collector = "…" and token = "…" used when a flag is absent '
        "(default /etc/vigil/enroll.toml if it exists; '-' reads standard input); deleted "
        "after a successful enrollment",
    )
    p.add_argument(
        "--recovery-signer",
        metavar="FINGERPRINT",
        help="the partner's recipient-signing key fingerprint (from 'vigil-backup keygen'): "
        "backups are then encrypted only to recipients that key signed",
    )
    p.add_argument("--force", action="store_true", help="enroll again, replacing the identity")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser(
        "recovery-signer",
        parents=[common],
        help="show or pin the partner's recipient-signing key fingerprint",
    )
    p.add_argument(
        "fingerprint",
        nargs="?",
        help="pin this fingerprint (from the partner's 'vigil-backup keygen' or 'signer')",
    )
    p.set_defaults(func=cmd_recovery_signer)


def _running_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """run, status, doctor, probe, backup."""
    p = sub.add_parser("run", parents=[common], help="run the agent (foreground)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--report-now",
        action="store_true",
        help="send the first report at once, not after a random delay within the first "
        "interval ([report] first_spread_s)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", parents=[common], help="what the agent last did")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "doctor", parents=[common], help="check configuration, permissions, collector, clock"
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("probe", parents=[common], help="probe one camera step by step")
    p.add_argument(
        "url",
        help="onvif://USER:PASS@HOST:PORT (with --config, onvif://HOST:PORT takes the "
        "configured credentials)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds for the whole probe (default 10)"
    )
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("backup", parents=[common], help="run a configuration backup")
    p.add_argument("--now", action="store_true", help="run one backup immediately, with progress")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backup)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "config", None) is None:
        args.config = args.config_before
    try:
        return int(args.func(args) or 0)
    except agent_config.AgentConfigError as exc:
        return _err(f"bad configuration: {exc}", 2)
    except StateDirError as exc:
        return _err(str(exc), 2)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head, grep -q): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
