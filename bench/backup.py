"""Backup benchmark: a 1 GiB configuration tree, Vigil's agent against ``restic backup``.

    .venv/bin/python bench/backup.py [--size-mib 1024] [--small-files 20000] [--keep]
        [--reader-threads 1|2|3]

Builds the tree in a temporary directory (many small config files plus one large export,
unique data so restic's deduplication gains nothing it would not in the field), then in
the same run:

1. Vigil first backup, end to end, in a fresh agent process: sources -> tar+zstd+age to a
   file in the state directory -> signed envelope -> chunked upload over HTTP on
   127.0.0.1 to a minimal sink speaking the upload protocol (it writes to disk and checks
   the SHA-256 on complete, as the collector does). Reports the archive+encrypt part and
   the upload part, and the agent's peak RSS over its own baseline after imports.
2. Vigil unchanged re-run (stat cache), in a fresh agent process.
3. ``restic init`` + ``restic backup`` of the same tree to a local repository, and its
   unchanged re-run.
4. With the real collector: ``vigil-backup restore`` (download, verify, decrypt,
   decompress, extract) against ``restic restore``, and ``vigil-backup verify`` against
   ``restic check --read-data``, each with its peak RSS.
5. The age layer alone, ``cryptography`` (Vigil's) against ``pyrage``, on the same 1 GiB
   file: throughput and peak RSS (docs/decisions/backup-format.md).

Budgets: end to end at most 0.9 of restic's time, memory flat (<= +64 MiB); unchanged
re-check <= 10% of the first run; restore at most 0.9 of ``restic restore``, verify at
most the time of ``restic check --read-data``, both with flat memory. The agent runs with
its default ``[backup] threads`` (half the cores, 1 to 4) unless ``--threads`` says.

Every figure comes with its wall time, its CPU time (user + system, all threads; what
the agent or ``vigil-backup`` spent, plus, apart, what the collector spent serving it)
and its peak RSS, and each Vigil figure with its ratios to restic's. CPU time moves far
less than wall time when other work shares the machine; the load average is printed at
the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


# --- the tree ------------------------------------------------------------------------------


def make_tree(root: Path, total_mib: int, small_files: int) -> int:
    """Small files: 1-24 KiB of config-like text; the rest one export of mixed data."""
    rng = random.Random(42)
    total = 0
    cfg = root / "etc" / "vms"
    for i in range(small_files):
        d = cfg / f"site-{i % 50:02d}" / f"cameras-{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.randint(1024, 24 * 1024)
        raw = base64.b64encode(os.urandom(size * 3 // 4))[:size]
        (d / f"camera-{i:05d}.xml").write_bytes(raw)
        total += len(raw)
    export = root / "var" / "backups" / "vms-db.sql"
    export.parent.mkdir(parents=True)
    left = total_mib * 2**20 - total
    with open(export, "wb") as f:
        while left > 0:
            # half random (already-compressed blobs), half text (table rows): zstd gains
            # about a third; all unique, so block dedup finds nothing.
            block = os.urandom(512 * 1024) + base64.b64encode(os.urandom(384 * 1024))
            block = block[:left]
            f.write(block)
            left -= len(block)
            total += len(block)
    return total


# --- a minimal collector sink (upload protocol only) ---------------------------------------


def _append(path: Path, data: bytes, h: hashlib._Hash) -> None:
    h.update(data)  # hashed as it arrives, as a collector does, not re-read on complete
    with open(path, "ab") as f:
        f.write(data)


class Sink:
    """POST /backups, PUT chunks (to a file), GET offset, complete (SHA-256 check), runs."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.url = ""
        self.uploads: dict[str, dict] = {}
        self.runs: list[dict] = []
        self.completed: list[dict] = []

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._serve())
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)

    async def _serve(self) -> None:
        from aiohttp import web

        from protocol import backup_envelope

        async def start(request: web.Request) -> web.Response:
            env = backup_envelope.decode(await request.read())
            h = env.header
            if h.kind == "unchanged":
                return web.json_response(
                    {"backup_id": f"u{h.seq}", "status": "unchanged"}, status=201
                )
            uid = f"up{h.seq}"
            path = self.dir / f"{uid}.age"
            self.uploads[uid] = {
                "header": h,
                "path": path,
                "offset": 0,
                "sha256": hashlib.sha256(),
            }
            path.write_bytes(b"")
            return web.json_response(
                {"upload_id": uid, "offset": 0, "chunk_size": 8 << 20}, status=201
            )

        async def put(request: web.Request) -> web.Response:
            up = self.uploads[request.match_info["uid"]]
            body = await request.read()
            await asyncio.to_thread(_append, up["path"], body, up["sha256"])
            up["offset"] += len(body)
            return web.json_response({"offset": up["offset"]})

        async def complete(request: web.Request) -> web.Response:
            up = self.uploads.pop(request.match_info["uid"])
            digest = up["sha256"].hexdigest()
            ok = digest == up["header"].ciphertext_sha256
            self.completed.append({"ok": ok, "size": up["offset"]})
            up["path"].unlink()
            if not ok:
                return web.json_response({"error": "hash_mismatch"}, status=422)
            return web.json_response({"backup_id": "b1", "seq": up["header"].seq}, status=201)

        async def runs(request: web.Request) -> web.Response:
            self.runs.append(await request.json())
            return web.json_response({}, status=201)

        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/api/v1/agent/backups", start)
        app.router.add_put("/api/v1/agent/backups/uploads/{uid}", put)
        app.router.add_post("/api/v1/agent/backups/uploads/{uid}/complete", complete)
        app.router.add_post("/api/v1/agent/backup-runs", runs)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


# --- the agent process -----------------------------------------------------------------------


def agent_child(url: str, state: str, tree: str, recipient: str, key_hex: str) -> None:
    """Runs in a fresh process: one ``BackupRunner.run_once``; prints JSON figures."""
    import aiohttp
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.backup.config import parse_backup_config
    from agent.backup.runner import BackupRunner
    from protocol.messages import AgentSettings

    class Resp:
        def __init__(self, status: int, body: bytes) -> None:
            self.status, self.body, self.headers = status, body, {}

        def json(self):
            return json.loads(self.body or b"null")

    class Client:
        session: aiohttp.ClientSession | None = None

        async def request(
            self, method, path, body=b"", content_type="application/json", params=None
        ):
            if self.session is None:
                self.session = aiohttp.ClientSession()
            async with self.session.request(
                method, url + path, data=body, params=params, headers={"Content-Type": content_type}
            ) as r:
                return Resp(r.status, await r.read())

    marks: dict[str, float] = {}

    def progress(what: str, done: int, total: int) -> None:
        if what == "upload" and "upload_start" not in marks:
            marks["upload_start"] = time.perf_counter()
            marks["archive_peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def main() -> dict:
        if url.startswith("config:"):
            # The real collector: the agent's own config, identity and CollectorClient.
            from agent.client import CollectorClient
            from agent.config import load
            from agent.identity import load_identity

            cfg = load(url[len("config:") :])
            loaded = load_identity(cfg.state_dir)
            assert loaded is not None, "not enrolled"
            identity, key = loaded
            holder: list[BackupRunner] = []
            client = CollectorClient(
                identity.collector_url,
                identity.server_id,
                key,
                on_settings=lambda st: holder and holder[0].apply(st),
            )
            runner = BackupRunner(cfg.backup, cfg.state_dir, key, identity.server_id, client)
            holder.append(runner)
            await client.open_session()  # the daemon holds a session already: not timed
        else:
            client = Client()
            runner = BackupRunner(
                parse_backup_config({"paths": [tree]}),
                Path(state),
                Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key_hex)),
                "bench-server",
                client,
                AgentSettings(backup_interval_s=86400, backup_recipients=[recipient]),
            )
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        out = await runner.run_once(progress)
        t1 = time.perf_counter()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        if isinstance(client, Client):
            if client.session:
                await client.session.close()
        else:
            await client.close()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {
            "outcome": out.outcome,
            "reason": out.reason,
            "seconds": t1 - t0,
            "cpu_s": ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime,
            "archive_seconds": marks.get("upload_start", t1) - t0,
            "upload_seconds": t1 - marks.get("upload_start", t1),
            "bytes": out.bytes,
            "baseline_rss_mib": base / 1024,
            "peak_rss_mib": peak / 1024,
            "archive_peak_rss_mib": marks.get("archive_peak_rss", peak) / 1024,
        }

    print(json.dumps(asyncio.run(main())))


def run_agent(url: str, state: Path, tree: Path, recipient: str, key_hex: str) -> dict:
    cmd = [sys.executable, __file__, "--child", url, str(state), str(tree), recipient, key_hex]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the real collector ---------------------------------------------------------------------


class RealCollector:
    """``vigil-collector serve`` on 127.0.0.1 with a partner, a recovery key and a policy;
    ``enroll`` makes a fresh agent (its own state directory and identity) per round."""

    def __init__(
        self, work: Path, tree: Path, threads: int | None = None, tree_bytes: int = 0
    ) -> None:
        self.work = work
        self.tree = tree
        self.threads = threads
        self.reader_args: list[str] = []
        """Extra arguments of ``vigil-backup restore`` and ``verify`` (``--threads N``)."""
        self.data = work / "collector"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(work / "collector.log", "wb")
        # A tree above the default limits (4 GiB a backup, 8 GiB staged) gets room for its backup.
        config = work / "collector.toml"
        room = max(4 * 2**30, 2 * tree_bytes)
        config.write_text(f"[backup]\nmax_size = {room}\nstaging_quota = {room}\n")
        self.proc = subprocess.Popen(
            [
                str(BIN / "vigil-collector"),
                "serve",
                "--data",
                str(self.data),
                "--config",
                str(config),
                "--listen",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the collector did not start; see collector.log") from None
                time.sleep(0.1)
        self._cli("partner", "add", "bench")
        recipient = _last_line([str(BIN / "vigil-backup"), "keygen", "--out", str(work / "rk")])
        self._cli("recovery-key", "add", "--partner", "bench", recipient)
        self.api_key = self._cli("apikey", "create", "--partner", "bench")
        self.env = dict(
            os.environ,
            VIGIL_COLLECTOR=self.url,
            VIGIL_API_KEY=self.api_key,
            VIGIL_KNOWN_SERVERS=str(work / "known-servers.json"),
        )
        self._cli("backup", "policy", "set", "--partner", "bench", "--interval", "24h")

    def _cli(self, *args: str) -> str:
        return _last_line([str(BIN / "vigil-collector"), *args, "--data", str(self.data)])

    def enroll(self, name: str) -> Path:
        token = self._cli("token", "create", "--partner", "bench")
        config = self.work / f"{name}.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{self.work / name}"\nhostname = "{name}"\n'
            f'machine_id = "bench-{name}"\n'
            f'[backup]\npaths = ["{self.tree}"]\n'
            + (f"threads = {self.threads}\n" if self.threads else "")
        )
        _last_line(
            [
                str(BIN / "vigil-agent"),
                "enroll",
                "--collector",
                self.url,
                "--token",
                token,
                "--config",
                str(config),
            ]
        )
        return config

    def server_id(self, name: str) -> str:
        return json.loads((self.work / name / "identity.json").read_text())["server_id"]

    def cpu(self) -> float:
        """The collector process's CPU seconds so far (user + system)."""
        import psutil

        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def restore(self, server: str, target: Path) -> Timed:
        """``vigil-backup restore`` of the latest backup."""
        return timed(
            [
                str(BIN / "vigil-backup"),
                "restore",
                "--server",
                server,
                "--identity",
                str(self.work / "rk"),
                "--to",
                str(target),
                *self.reader_args,
            ],
            self.env,
        )

    def verify(self, server: str) -> Timed:
        """``vigil-backup verify`` of the latest backup."""
        return timed(
            [
                str(BIN / "vigil-backup"),
                "verify",
                "--server",
                server,
                "--identity",
                str(self.work / "rk"),
                *self.reader_args,
            ],
            self.env,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _last_line(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed: {done.stderr[-1000:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


class Timed(NamedTuple):
    """One command's figures: wall seconds, peak RSS (MiB), CPU seconds (user + system,
    all its threads; from the kernel's accounting when it was reaped, so it does not
    depend on sampling)."""

    seconds: float
    rss_mib: float
    cpu_s: float
    sys_s: float = 0.0
    """The part of ``cpu_s`` spent in the kernel."""


def timed(cmd: list[str], env: dict[str, str]) -> Timed:
    """Run ``cmd``; its RSS is sampled every 20 ms, its CPU time read from ``wait4``."""
    import psutil

    t0 = time.perf_counter()
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errors)
    peak = 0
    ps = psutil.Process(proc.pid)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak = max(peak, usage.ru_maxrss * 1024)  # the kernel's own peak, in KiB
    errors.seek(0)
    err = errors.read()[-2000:].decode(errors="replace")
    errors.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {err}")
    return Timed(elapsed, peak / 2**20, usage.ru_utime + usage.ru_stime, usage.ru_stime)


# --- restic ----------------------------------------------------------------------------------


def restic_env(repo: Path) -> dict[str, str]:
    env = dict(os.environ, RESTIC_PASSWORD="bench-password", RESTIC_REPOSITORY=str(repo))
    env.setdefault("RESTIC_CACHE_DIR", str(repo.parent / "restic-cache"))
    return env


def restic(args: list[str], repo: Path) -> Timed:
    """Seconds, peak RSS and CPU time of one restic command on ``repo``."""
    return timed(["restic", *args], restic_env(repo))


# --- age layer alone -------------------------------------------------------------------------


def age_child(which: str, src: str, dst: str) -> None:
    from protocol.backup_archive import AgeWriter, generate_identity

    _, recipient = generate_identity()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if which == "pyrage":
        import pyrage

        with open(src, "rb") as r, open(dst, "wb") as w:
            pyrage.encrypt_io(r, w, [pyrage.x25519.Recipient.from_str(recipient)])
    else:
        with open(src, "rb") as r, open(dst, "wb") as w:
            aw = AgeWriter(w, [recipient])
            while b := r.read(1 << 20):
                aw.write(b)
            aw.close()
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = os.path.getsize(src)
    print(
        json.dumps({"mb_s": size / dt / 1e6, "seconds": dt, "rss_growth_mib": (peak - base) / 1024})
    )


def run_age(which: str, src: Path, dst: Path) -> dict:
    cmd = [sys.executable, __file__, "--age-child", which, str(src), str(dst)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    dst.unlink()
    return json.loads(out.strip().splitlines()[-1])


# --- main ------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _recover_round(
    rnd: int, real: RealCollector, repo: Path, work: Path, keep_restored: bool = False
) -> dict[str, Timed]:
    """Restore and verify this round's backup, Vigil's and restic's, in turns (who goes
    first alternates from round to round). Vigil's
    figures also carry the collector's CPU time while it served the download (keys
    ending in ``collector``): restic reads its repository itself."""
    server = real.server_id(f"agent-{rnd}")
    out: dict[str, Timed] = {}

    def vigil(name: str, run: Callable[[], Timed]) -> None:
        c0 = real.cpu()
        out[name] = run()
        out[name + " collector"] = Timed(0.0, 0.0, real.cpu() - c0)

    # Each tool goes first in every other round: a restore that follows the other's
    # deletion of a whole tree creates its files more slowly on this file system.
    restores = [
        ("vigil restore", work / "restore-vigil"),
        ("restic restore", work / "restore-restic"),
    ]
    if rnd % 2:
        restores.reverse()
    for name, target in restores:
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(["sync"], check=False)
        if name.startswith("vigil"):
            vigil(name, lambda t=target: real.restore(server, t))
        else:
            out[name] = restic(["restore", "latest", "--target", str(target)], repo)
        if keep_restored:  # no deletion before the next restore: kept until the end
            target.rename(work / f"{target.name}-round-{rnd + 1}")
        else:
            shutil.rmtree(target, ignore_errors=True)

    def vigil_verify() -> None:
        vigil("vigil verify", lambda: real.verify(server))

    def restic_check() -> None:
        out["restic check --read-data"] = restic(["check", "--read-data"], repo)

    for check in (restic_check, vigil_verify) if rnd % 2 else (vigil_verify, restic_check):
        check()
    print(
        f"round {rnd + 1} recovery: "
        + "; ".join(
            f"{k} {t.seconds:.2f} s, cpu {t.cpu_s:.2f} s "
            f"(kernel {t.sys_s:.2f} s, {t.rss_mib:.0f} MiB)"
            + (
                f" + collector cpu {out[k + ' collector'].cpu_s:.2f} s"
                if k.startswith("vigil")
                else ""
            )
            for k, t in out.items()
            if not k.endswith("collector")
        )
    )
    for vigil_key, restic_key in (
        ("vigil restore", "restic restore"),
        ("vigil verify", "restic check --read-data"),
    ):
        v, r = out[vigil_key], out[restic_key]
        both = v.cpu_s + out[vigil_key + " collector"].cpu_s
        print(
            f"  {vigil_key} / {restic_key}: wall {v.seconds / r.seconds:.2f}, "
            f"cpu {v.cpu_s / r.cpu_s:.2f} (with the collector's {both / r.cpu_s:.2f}), "
            f"peak RSS {v.rss_mib / r.rss_mib:.2f}"
        )
    return out


def _print_recovery(rows: list[dict[str, Timed]]) -> None:
    def med(key: str, field: str = "seconds") -> float:
        return _median([getattr(r[key], field) for r in rows])

    def peak(key: str) -> float:
        return max(r[key].rss_mib for r in rows)

    for what, restic_key, budget in (
        ("restore", "restic restore", "0.90"),
        ("verify", "restic check --read-data", "1.00"),
    ):
        vk = f"vigil {what}"
        wall = _median([r[vk].seconds / r[restic_key].seconds for r in rows])
        cpu = _median([r[vk].cpu_s / r[restic_key].cpu_s for r in rows])
        print(
            f"vigil-backup {what}: {med(vk):.2f} s, cpu {med(vk, 'cpu_s'):.2f} s "
            f"(collector serving: {med(vk + ' collector', 'cpu_s'):.2f} s), peak RSS "
            f"{peak(vk):.0f} MiB; {restic_key} {med(restic_key):.2f} s, cpu "
            f"{med(restic_key, 'cpu_s'):.2f} s, {peak(restic_key):.0f} MiB; "
            f"ratio wall {wall:.2f} (budget <= {budget}), cpu {cpu:.2f}, "
            f"peak RSS {peak(vk) / peak(restic_key):.2f}"
        )


def _collector_cpu(seconds: float | None) -> str:
    """The collector's share, when it ran as a process of its own (not the sink)."""
    return "" if seconds is None else f" + collector cpu {seconds:.2f} s"


def _print_backup(rows: list[tuple], target: str) -> None:
    """The medians of the backup rounds: (vigil first, vigil unchanged, restic first,
    restic unchanged, RSS growth) per round."""
    v_first = _median([r[0]["seconds"] for r in rows])
    v_cpu = _median([r[0]["cpu_s"] for r in rows])
    colls = [r[0]["collector_cpu_s"] for r in rows if r[0]["collector_cpu_s"] is not None]
    v_arch = _median([r[0]["archive_seconds"] for r in rows])
    v_up = _median([r[0]["upload_seconds"] for r in rows])
    v_again = _median([r[1]["seconds"] for r in rows])
    r_first = _median([r[2].seconds for r in rows])
    r_cpu = _median([r[2].cpu_s for r in rows])
    r_again = _median([r[3].seconds for r in rows])
    growth = max(r[4] for r in rows)
    ratio = _median([r[0]["seconds"] / r[2].seconds for r in rows])
    cpu_ratio = _median([r[0]["cpu_s"] / r[2].cpu_s for r in rows])
    ciphertext = rows[0][0]["bytes"] / 2**20
    print(f"--- medians of {len(rows)} rounds ---")
    print(
        f"vigil first backup, end to end: {v_first:.2f} s, cpu {v_cpu:.2f} s (archive+encrypt "
        f"{v_arch:.2f} s, upload over HTTP on 127.0.0.1 to {target} {v_up:.2f} s; "
        f"{ciphertext:.0f} MiB ciphertext"
        + (f"; the collector's cpu receiving it {_median(colls):.2f} s)" if colls else ")")
    )
    print(
        f"vigil agent RSS: baseline {rows[0][0]['baseline_rss_mib']:.1f} MiB, "
        f"largest growth {growth:.1f} MiB (budget <= 64); restic backup peak "
        f"{max(r[2].rss_mib for r in rows):.0f} MiB"
    )
    print(
        f"vigil unchanged re-run: {v_again:.2f} s = {100 * v_again / v_first:.1f}% of the "
        f"first run (budget <= 10%)"
    )
    print(f"restic backup: {r_first:.2f} s, cpu {r_cpu:.2f} s; unchanged re-run {r_again:.2f} s")
    print(
        f"ratio vigil/restic end to end: wall {ratio:.2f} (budget <= 0.90), cpu {cpu_ratio:.2f}; "
        f"archive+encrypt only (wall): {v_arch / r_first:.2f}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        agent_child(*sys.argv[2:7])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--age-child":
        age_child(*sys.argv[2:5])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--size-mib",
        type=int,
        default=1024,
        help="the tree's size; the run needs about four times it free in the temporary "
        "directory (tree, restic repository, collector store, one restored tree): 10240 "
        "failed with 35 GB free and passed with 44 GB",
    )
    p.add_argument("--small-files", type=int, default=20000, help="1-24 KiB files in the tree")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians shown)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--no-age-compare", action="store_true")
    p.add_argument("--threads", type=int, help="[backup] threads for the agent (default: its own)")
    p.add_argument(
        "--reader-threads",
        type=int,
        choices=(1, 2, 3),
        help="vigil-backup restore/verify --threads (default: its own)",
    )
    p.add_argument(
        "--keep-restored",
        action="store_true",
        help="keep each restored tree until the end instead of deleting it before the next "
        "restore (on ext4 without a journal a deletion slows the creates that follow it)",
    )
    p.add_argument(
        "--sink",
        action="store_true",
        help="upload to the minimal protocol sink instead of the real collector",
    )
    args = p.parse_args()

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from protocol.backup_archive import generate_identity

    work = Path(tempfile.mkdtemp(prefix="vigil-bench-backup-"))
    try:
        tree = work / "tree"
        t0 = time.perf_counter()
        total = make_tree(tree, args.size_mib, args.small_files)
        subprocess.run(["sync"], check=False)
        print(
            f"tree: {total / 2**20:.0f} MiB, {args.small_files} small files + 1 export "
            f"(built in {time.perf_counter() - t0:.1f} s); load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        if args.sink:
            sink = Sink(work)
            sink.start()
            target = "the minimal sink"
        else:
            real = RealCollector(work, tree, args.threads, total)
            if args.reader_threads:
                real.reader_args = ["--threads", str(args.reader_threads)]
            target = "vigil-collector serve (local data directory)"
        _, recipient = generate_identity()
        key_hex = (
            Ed25519PrivateKey.generate()
            .private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            .hex()
        )
        rows = []
        recovered: list[dict[str, Timed]] = []
        for rnd in range(args.rounds):
            state = work / f"state-{rnd}"
            url = sink.url if args.sink else "config:" + str(real.enroll(f"agent-{rnd}"))
            c0 = 0.0 if args.sink else real.cpu()
            first = run_agent(url, state, tree, recipient, key_hex)
            first["collector_cpu_s"] = None if args.sink else real.cpu() - c0
            assert first["outcome"] == "ok", first
            again = run_agent(url, state, tree, recipient, key_hex)
            assert again["outcome"] == "unchanged", again
            repo = work / f"restic-repo-{rnd}"
            restic(["init"], repo)
            r_first = restic(["backup", "--quiet", str(tree)], repo)
            r_again = restic(["backup", "--quiet", str(tree)], repo)
            if not args.sink:
                recovered.append(_recover_round(rnd, real, repo, work, args.keep_restored))
            shutil.rmtree(repo)
            growth = first["peak_rss_mib"] - first["baseline_rss_mib"]
            rows.append((first, again, r_first, r_again, growth))
            print(
                f"round {rnd + 1}: vigil {first['seconds']:.2f} s, cpu {first['cpu_s']:.2f} s"
                f"{_collector_cpu(first['collector_cpu_s'])} (archive+encrypt "
                f"{first['archive_seconds']:.2f} s, upload {first['upload_seconds']:.2f} s), "
                f"unchanged {again['seconds']:.2f} s, RSS +{growth:.1f} MiB; "
                f"restic {r_first.seconds:.2f} s, cpu {r_first.cpu_s:.2f} s "
                f"({r_first.rss_mib:.0f} MiB), unchanged {r_again.seconds:.2f} s; "
                f"ratio wall {first['seconds'] / r_first.seconds:.2f}, "
                f"cpu {first['cpu_s'] / r_first.cpu_s:.2f}"
            )
        _print_backup(rows, target)
        if recovered:
            _print_recovery(recovered)
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if not args.no_age_compare:
            big = next(tree.rglob("*.sql"))
            res: dict[str, list[dict]] = {"cryptography": [], "pyrage": []}
            for _ in range(args.rounds):
                for which in res:
                    res[which].append(run_age(which, big, work / "age.out"))
            for which, runs in res.items():
                print(
                    f"age layer, {which}: {_median([r['mb_s'] for r in runs]):.0f} MB/s "
                    f"(median of {len(runs)}), RSS growth "
                    f"{max(r['rss_growth_mib'] for r in runs):.1f} MiB "
                    f"on {big.stat().st_size / 2**20:.0f} MiB"
                )
    finally:
        if not args.sink and "real" in locals():
            real.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
