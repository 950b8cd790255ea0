"""``vigil-backup`` against the fake collector's partner endpoints (real sockets)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from agent_helpers import enroll, make_runner
from archive_helpers import snapshot
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fake_collector import FakeCollector, Stored
from test_malicious import craft, member

from protocol import backup_envelope
from protocol.backup_archive import CHUNK_SIZE, parse_identity, recipient_of
from recovery.cli import main


def cli(collector: FakeCollector, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([*args, "--collector", collector.url, "--api-key", collector.api_key])
    out = capsys.readouterr()
    return rc, out.out, out.err


def backed_up(collector, tree: Path, tmp_path: Path, recipient: str, server: str = "srv-1"):
    key = enroll(collector, server)
    runner, _ = make_runner(
        collector, tmp_path / f"state-{server}", key, {"paths": [str(tree)]}, [recipient], server
    )
    out = asyncio.run(runner.run_once())
    assert out.outcome == "ok", out.reason
    return runner, key


def test_keygen(tmp_path: Path, capsys) -> None:
    path = tmp_path / "k"
    assert main(["keygen", "--out", str(path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = next(ln for ln in path.read_text().splitlines() if ln.startswith("AGE-SECRET-KEY-1"))
    assert last.startswith("age1") and recipient_of(parse_identity(secret)) == last
    assert main(["keygen", "--out", str(path)]) == 1
    assert "exists" in capsys.readouterr().err


def test_list_verify_restore(collector, tree: Path, tmp_path: Path, keyfile, capsys) -> None:
    key, recipient = keyfile
    runner, _ = backed_up(collector, tree, tmp_path, recipient)
    assert asyncio.run(runner.run_once()).outcome == "unchanged"

    rc, out, _ = cli(collector, capsys, "list", "--server", "srv-1", "--json")
    assert rc == 0
    kinds = [b["kind"] for b in json.loads(out)["backups"]]
    assert kinds == ["full", "unchanged"]

    rc, out, err = cli(
        collector, capsys, "verify", "--server", "srv-1", "--identity", str(key), "--json"
    )
    assert rc == 0, err
    assert json.loads(out)["verified"] is True and json.loads(out)["kind"] == "unchanged"

    dest = tmp_path / "restore-here"
    rc, out, err = cli(
        collector,
        capsys,
        "restore",
        "--server",
        "srv-1",
        "--backup",
        "latest",
        "--identity",
        str(key),
        "--to",
        str(dest),
    )
    assert rc == 0, err
    rel = tree.relative_to("/")
    assert snapshot(dest / rel) == snapshot(tree)
    assert not [p for p in tmp_path.iterdir() if "vigil-restore" in p.name]

    # the target must be new or empty
    rc, _, err = cli(
        collector, capsys, "restore", "--server", "srv-1", "--identity", str(key), "--to", str(dest)
    )
    assert rc == 1 and "not an empty directory" in err


def test_env_vars_and_errors(collector, tree, tmp_path: Path, keyfile, capsys, monkeypatch) -> None:
    _, recipient = keyfile
    backed_up(collector, tree, tmp_path, recipient)
    monkeypatch.setenv("VIGIL_COLLECTOR", collector.url)
    monkeypatch.setenv("VIGIL_API_KEY", collector.api_key)
    assert main(["list", "--server", "srv-1"]) == 0
    assert main(["list", "--server", "no-such-server"]) == 1
    assert "not found" in capsys.readouterr().err
    monkeypatch.setenv("VIGIL_API_KEY", "wrong")
    assert main(["list", "--server", "srv-1"]) == 1
    assert "API key" in capsys.readouterr().err


def test_diff(collector, tree: Path, tmp_path: Path, keyfile, capsys) -> None:
    key, recipient = keyfile
    runner, _ = backed_up(collector, tree, tmp_path, recipient)
    vms = tree / "etc" / "vms"
    (vms / "agent.toml").write_text("[agent]\nname = 'y'\n")
    (vms / "added.conf").write_text("new\n")
    (vms / "empty").unlink()
    os.chmod(vms / "sub dir" / "with space.conf", 0o600)
    assert asyncio.run(runner.run_once()).outcome == "ok"
    rc, out, err = cli(
        collector, capsys, "diff", "1", "2", "--server", "srv-1", "--identity", str(key), "--json"
    )
    assert rc == 0, err
    d = json.loads(out)
    prefix = str(vms.relative_to("/"))
    assert d["added"] == [f"{prefix}/added.conf"]
    assert d["removed"] == [f"{prefix}/empty"]
    changed = {c["path"]: c for c in d["changed"]}
    assert changed[f"{prefix}/agent.toml"]["changes"] == ["content"]
    assert "+name = 'y'" in changed[f"{prefix}/agent.toml"]["diff"]
    assert changed[f"{prefix}/sub dir/with space.conf"]["changes"] == ["metadata"]
    rc, out, _ = cli(
        collector, capsys, "diff", "1", "2", "--server", "srv-1", "--identity", str(key)
    )
    assert rc == 0 and "-name = 'x'" in out and f"+ {prefix}/added.conf" in out


def _tampered(collector: FakeCollector, how: str, tmp_path: Path, tree: Path, recipient: str):
    full = collector.backups[0]
    obj = bytearray(full.obj or b"")
    if how == "flipped bit":
        obj[len(obj) // 2] ^= 0x10
        full.obj = bytes(obj)
    elif how == "truncated":
        full.obj = bytes(obj[: -CHUNK_SIZE // 2])
    elif how == "chunks reordered":
        hdr_end = bytes(obj).index(b"\n--- ")
        start = hdr_end + bytes(obj)[hdr_end + 1 :].index(b"\n") + 2 + 16
        c = CHUNK_SIZE + 16
        a, b = obj[start : start + c], obj[start + c : start + 2 * c]
        obj[start : start + c], obj[start + c : start + 2 * c] = b, a
        full.obj = bytes(obj)
    elif how == "signed by another agent":
        env = backup_envelope.decode(full.envelope)
        full.envelope = backup_envelope.encode(
            backup_envelope.sign(env.header, Ed25519PrivateKey.generate())
        )
    elif how == "header swapped between servers":
        other = tmp_path / "other-tree"
        (other / "x").mkdir(parents=True)
        (other / "x" / "f").write_text("other server\n")
        backed_up(collector, other, tmp_path, recipient, server="srv-2")
        theirs = collector.backups[-1]
        collector.backups.remove(theirs)
        full.envelope, full.obj = theirs.envelope, theirs.obj
    elif how == "same key, header of another server":
        # even with one key for both, the header names its server
        env = backup_envelope.decode(full.envelope)
        env.header.server_id = "srv-2"
        full.envelope = backup_envelope.encode(backup_envelope.sign(env.header, collector.sk))
    elif how == "replayed (old backup served as new)":
        env = backup_envelope.decode(full.envelope)
        collector.backups.append(
            Stored("replay", "srv-1", env.header, full.envelope, full.obj, 0.0)
        )
        collector.backups[-1].listing = lambda: {"id": "replay", "seq": 9, "kind": "full"}
    elif how == "object of another backup":
        (tree / "etc" / "vms" / "agent.toml").write_text("changed\n")
        asyncio.run(collector.runner.run_once())
        full.obj = collector.backups[-1].obj
    else:
        raise AssertionError(how)


TAMPER = [
    "flipped bit",
    "truncated",
    "chunks reordered",
    "signed by another agent",
    "header swapped between servers",
    "same key, header of another server",
    "replayed (old backup served as new)",
    "object of another backup",
]


@pytest.mark.parametrize("how", TAMPER)
def test_tampered_backups_refused(
    how: str, collector, tree: Path, tmp_path: Path, keyfile, capsys
) -> None:
    key, recipient = keyfile
    (tree / "random.bin").write_bytes(os.urandom(3 * CHUNK_SIZE))
    runner, sk = backed_up(collector, tree, tmp_path, recipient)
    collector.sk, collector.runner = sk, runner  # type: ignore[attr-defined]
    rc, _, err = cli(
        collector, capsys, "verify", "--server", "srv-1", "--backup", "1", "--identity", str(key)
    )
    assert rc == 0, err
    _tampered(collector, how, tmp_path, tree, recipient)
    spec = "replay" if how.startswith("replayed") else "1"
    rc, _, err = cli(
        collector, capsys, "verify", "--server", "srv-1", "--backup", spec, "--identity", str(key)
    )
    assert rc == 1 and "vigil-backup verify: " in err, err
    dest = tmp_path / "dest"
    rc, _, err = cli(
        collector,
        capsys,
        "restore",
        "--server",
        "srv-1",
        "--backup",
        spec,
        "--identity",
        str(key),
        "--to",
        str(dest),
    )
    assert rc == 1 and not dest.exists()
    assert not [p for p in tmp_path.iterdir() if "vigil-restore" in p.name]


def test_restore_refuses_malicious_archive_even_if_signed(
    collector, tmp_path: Path, keyfile, capsys
) -> None:
    key, recipient = keyfile
    sk = enroll(collector, "srv-1")
    blob = craft(
        lambda t: [
            member(t, "etc", tarfile.DIRTYPE),
            member(t, "etc/ok.conf"),
            member(t, "etc/link", tarfile.SYMTYPE, link="../../../../etc/passwd"),
        ],
        recipient=recipient,
    )
    import hashlib

    header = backup_envelope.BackupHeader(
        server_id="srv-1",
        seq=1,
        created_at=1.0,
        ciphertext_sha256=hashlib.sha256(blob).hexdigest(),
        ciphertext_size=len(blob),
        content_digest=_digest_of(blob, key, recipient),
        recipients=[recipient],
        plaintext_size=1 << 20,
    )
    env = backup_envelope.encode(backup_envelope.sign(header, sk))
    collector.backups.append(Stored("evil", "srv-1", header, env, blob, 1.0))
    dest = tmp_path / "out" / "dest"
    rc, _, err = cli(
        collector, capsys, "restore", "--server", "srv-1", "--identity", str(key), "--to", str(dest)
    )
    assert rc == 1 and "pointing outside" in err
    assert not dest.exists() and list((tmp_path / "out").iterdir()) == []
    # asked to, the restore leaves such links out and says so
    rc, out, err = cli(
        collector,
        capsys,
        "restore",
        "--server",
        "srv-1",
        "--identity",
        str(key),
        "--to",
        str(dest),
        "--skip-unsafe-links",
        "--json",
    )
    assert rc == 0, err
    assert json.loads(out)["skipped_links"] == ["etc/link"] and "etc/link" in err
    assert (dest / "etc" / "ok.conf").read_bytes() == b"x"
    assert not (dest / "etc" / "link").is_symlink()


def _digest_of(blob: bytes, key: Path, recipient: str) -> str:
    import zstandard

    from protocol.backup_archive import AgeReader, decode_manifest, read_identities

    plain = (
        zstandard.ZstdDecompressor()
        .stream_reader(AgeReader(io.BytesIO(blob), read_identities(key.read_text())))
        .read()
    )
    with tarfile.open(fileobj=io.BytesIO(plain)) as t:
        f = t.extractfile(".vigil/manifest.json")
        assert f is not None
        return decode_manifest(f.read()).content_digest


def test_console_entry_point(collector, tree: Path, tmp_path: Path, keyfile) -> None:
    import subprocess
    import sys

    key, recipient = keyfile
    backed_up(collector, tree, tmp_path, recipient)
    env = dict(os.environ, VIGIL_COLLECTOR=collector.url, VIGIL_API_KEY=collector.api_key)
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "recovery.cli",
            "verify",
            "--server",
            "srv-1",
            "--identity",
            str(key),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0 and "verifies" in ok.stdout, ok.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "recovery.cli",
            "verify",
            "--server",
            "nope",
            "--identity",
            str(key),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1 and bad.stdout == "" and "not found" in bad.stderr
