"""``vigil-backup`` against the real collector's partner endpoints (real sockets), with backups
the agent's runner made; tampering is done on the collector's data directory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import backup_envelope
from protocol.backup_archive import CHUNK_SIZE, parse_identity, recipient_of
from recovery.cli import build_parser, main
from recovery.extract import RESTORE_THREADS, VERIFY_THREADS, default_threads
from tests.backups.archive_helpers import snapshot
from tests.backups.backup_site import BackupSite
from tests.backups.recovery_cli import backed_up, cli, restore
from tests.backups.test_malicious import craft, member


def test_keygen(tmp_path: Path, capsys) -> None:
    path = tmp_path / "k"
    assert main(["keygen", "--out", str(path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = next(ln for ln in path.read_text().splitlines() if ln.startswith("AGE-SECRET-KEY-1"))
    assert last.startswith("age1") and recipient_of(parse_identity(secret)) == last
    assert main(["keygen", "--out", str(path)]) == 1
    assert "exists" in capsys.readouterr().err


def test_list_verify_restore(site: BackupSite, tree: Path, tmp_path: Path, keyfile, capsys) -> None:
    key, recipient = keyfile
    runner, _ = backed_up(site, tree, tmp_path, recipient)
    assert site.run(runner.run_once()).outcome == "unchanged"

    rc, out, _ = cli(site, capsys, "list", "--server", site.server_id, "--json")
    assert rc == 0
    kinds = [b["kind"] for b in json.loads(out)["backups"]]
    assert kinds == ["unchanged", "full"]  # newest first, as the collector lists them

    rc, out, err = cli(
        site, capsys, "verify", "--server", site.server_id, "--identity", str(key), "--json"
    )
    assert rc == 0, err
    assert json.loads(out)["verified"] is True and json.loads(out)["kind"] == "unchanged"

    dest = tmp_path / "restore-here"
    rc, out, err = restore(site, capsys, key, dest, "--backup", "latest")
    assert rc == 0, err
    rel = tree.relative_to("/")
    assert snapshot(dest / rel) == snapshot(tree)
    assert not [p for p in tmp_path.iterdir() if "vigil-restore" in p.name]

    # the target must be new or empty
    rc, _, err = restore(site, capsys, key, dest)
    assert rc == 1 and "not an empty directory" in err


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_each_thread_count_verifies_and_restores(
    threads: str, site: BackupSite, tree: Path, tmp_path: Path, keyfile, capsys
) -> None:
    key, recipient = keyfile
    (tree / "random.bin").write_bytes(os.urandom(3 * CHUNK_SIZE + 5))
    backed_up(site, tree, tmp_path, recipient)
    rc, out, err = cli(
        site,
        capsys,
        "verify",
        "--server",
        site.server_id,
        "--identity",
        str(key),
        "--threads",
        threads,
        "--json",
    )
    assert rc == 0, err
    verified = json.loads(out)
    assert verified["verified"] is True and verified["files"] > 1
    stored = site.object_file(site.backups()[0]["id"]).read_bytes()
    assert verified["ciphertext_sha256"] == hashlib.sha256(stored).hexdigest()
    dest = tmp_path / "restored"
    rc, out, err = restore(site, capsys, key, dest, "--threads", threads, "--json")
    assert rc == 0, err
    assert snapshot(dest / tree.relative_to("/")) == snapshot(tree)
    # a restore binds the content through the signed digest, not the object's hash
    restored = json.loads(out)
    assert "ciphertext_sha256" not in restored
    assert restored["content_digest"] == verified["content_digest"]
    assert restored["ciphertext_size"] == verified["ciphertext_size"] == len(stored)


def test_thread_defaults_differ_for_verify_and_restore() -> None:
    """A check without writing reads on three threads, a restore on two."""
    assert (VERIFY_THREADS, RESTORE_THREADS) == (3, 2)
    assert default_threads(extracting=False) == VERIFY_THREADS
    assert default_threads(extracting=True) == RESTORE_THREADS
    for command in (["verify"], ["restore", "--to", "t"], ["diff", "1", "2"]):
        args = build_parser().parse_args([*command, "--server", "s", "--identity", "k"])
        assert args.threads is None  # each command's own default, not one for all


@pytest.mark.parametrize("value", ["0", "4", "-1", "two", ""])
def test_bad_thread_counts_refused(value: str, capsys) -> None:
    for command in (["verify"], ["restore", "--to", "t"], ["diff", "1", "2"]):
        with pytest.raises(SystemExit) as exc:
            main([*command, "--server", "s", "--identity", "k", "--threads", value])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "argument --threads: invalid" in err, err
        assert "choose from 1, 2, 3" in err or "invalid int value" in err, err


def test_env_vars_and_errors(
    site: BackupSite, tree, tmp_path: Path, keyfile, capsys, monkeypatch
) -> None:
    _, recipient = keyfile
    backed_up(site, tree, tmp_path, recipient)
    monkeypatch.setenv("VIGIL_COLLECTOR", site.collector.url)
    monkeypatch.setenv("VIGIL_API_KEY", site.partner.api_key)
    assert main(["list", "--server", site.server_id]) == 0
    assert main(["list", "--server", "no-such-server"]) == 1
    assert "not found" in capsys.readouterr().err
    monkeypatch.setenv("VIGIL_API_KEY", "wrong")
    assert main(["list", "--server", site.server_id]) == 1
    assert "API key" in capsys.readouterr().err
    # The collector's address as people mistype it: named, with the URL to use.
    monkeypatch.setenv("VIGIL_API_KEY", site.partner.api_key)
    bare = site.collector.url.removeprefix("http://")
    for url, said in (
        (bare, f"has no scheme; use https://{bare}"),
        (site.collector.url + "/api/v1", f"without a path: use {site.collector.url}"),
    ):
        monkeypatch.setenv("VIGIL_COLLECTOR", url)
        assert main(["list", "--server", site.server_id]) == 1
        assert said in capsys.readouterr().err


def test_diff(site: BackupSite, tree: Path, tmp_path: Path, keyfile, capsys) -> None:
    key, recipient = keyfile
    runner, _ = backed_up(site, tree, tmp_path, recipient)
    vms = tree / "etc" / "vms"
    (vms / "agent.toml").write_text("[agent]\nname = 'y'\n")
    (vms / "added.conf").write_text("new\n")
    (vms / "empty").unlink()
    os.chmod(vms / "sub dir" / "with space.conf", 0o600)
    assert site.run(runner.run_once()).outcome == "ok"
    rc, out, err = cli(
        site,
        capsys,
        "diff",
        "1",
        "2",
        "--server",
        site.server_id,
        "--identity",
        str(key),
        "--json",
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
        site, capsys, "diff", "1", "2", "--server", site.server_id, "--identity", str(key)
    )
    assert rc == 0 and "-name = 'x'" in out and f"+ {prefix}/added.conf" in out


def _tampered(site: BackupSite, how: str, tmp_path: Path, tree: Path, recipient: str, runner):
    """The collector's data directory edited so that it serves backup 1 (or "replay")
    otherwise than the agent made it."""
    full = site.backups()[0]
    fid = full["id"]
    obj_file = site.object_file(fid)
    obj = bytearray(obj_file.read_bytes())
    envelope = site.row(fid)["envelope"].encode()
    if how == "flipped bit":
        obj[len(obj) // 2] ^= 0x10
        obj_file.write_bytes(bytes(obj))
    elif how == "truncated":
        obj_file.write_bytes(bytes(obj[: -CHUNK_SIZE // 2]))
    elif how == "chunks reordered":
        hdr_end = bytes(obj).index(b"\n--- ")
        start = hdr_end + bytes(obj)[hdr_end + 1 :].index(b"\n") + 2 + 16
        c = CHUNK_SIZE + 16
        a, b = obj[start : start + c], obj[start + c : start + 2 * c]
        obj[start : start + c], obj[start + c : start + 2 * c] = b, a
        obj_file.write_bytes(bytes(obj))
    elif how == "signed by another agent":
        env = backup_envelope.decode(envelope)
        site.set_envelope(
            fid,
            backup_envelope.encode(backup_envelope.sign(env.header, Ed25519PrivateKey.generate())),
        )
    elif how == "header swapped between servers":
        other_tree = tmp_path / "other-tree"
        (other_tree / "x").mkdir(parents=True)
        (other_tree / "x" / "f").write_text("other server\n")
        other = site.another_server(tmp_path / "other-agent")
        backed_up(other, other_tree, tmp_path, recipient)
        theirs = other.backups()[0]
        site.set_envelope(fid, other.row(theirs["id"])["envelope"].encode())
        obj_file.write_bytes(other.object_file(theirs["id"]).read_bytes())
    elif how == "same key, header of another server":
        # even with one key for both, the header names its server
        env = backup_envelope.decode(envelope)
        env.header.server_id = "srv-2"
        site.set_envelope(fid, backup_envelope.encode(backup_envelope.sign(env.header, site.key)))
    elif how == "replayed (old backup served as new)":
        site.insert_backup({**site.row(fid), "id": "replay", "seq": 9})
    elif how == "object of another backup":
        (tree / "etc" / "vms" / "agent.toml").write_text("changed\n")
        assert site.run(runner.run_once()).outcome == "ok"
        obj_file.write_bytes(site.object_file(site.backups()[-1]["id"]).read_bytes())
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
    how: str, site: BackupSite, tree: Path, tmp_path: Path, keyfile, capsys
) -> None:
    key, recipient = keyfile
    (tree / "random.bin").write_bytes(os.urandom(3 * CHUNK_SIZE))
    runner, _ = backed_up(site, tree, tmp_path, recipient)
    rc, _, err = cli(
        site,
        capsys,
        "verify",
        "--server",
        site.server_id,
        "--backup",
        "1",
        "--identity",
        str(key),
    )
    assert rc == 0, err
    _tampered(site, how, tmp_path, tree, recipient, runner)
    spec = "replay" if how.startswith("replayed") else "1"
    rc, _, err = cli(
        site,
        capsys,
        "verify",
        "--server",
        site.server_id,
        "--backup",
        spec,
        "--identity",
        str(key),
    )
    assert rc == 1 and "vigil-backup verify: " in err, err
    dest = tmp_path / "dest"
    rc, _, err = restore(site, capsys, key, dest, "--backup", spec)
    assert rc == 1 and not dest.exists()
    assert not [p for p in tmp_path.iterdir() if "vigil-restore" in p.name]


def _reencrypted(blob: bytes, key: Path, recipient: str, manifest_too: bool) -> tuple[bytes, str]:
    """``blob``'s archive with one byte of its ``agent.toml`` changed, compressed and
    encrypted anew to ``recipient`` (what only a holder of the recovery key could store),
    and that file's member name. With ``manifest_too`` the manifest lists the changed
    file's SHA-256 and a content digest recomputed to match (the same length: the tar
    stream keeps its layout)."""
    import zstandard

    from protocol.backup_archive import (
        AgeReader,
        AgeWriter,
        content_digest,
        decode_manifest,
        encode_manifest,
        read_identities,
    )

    ids = read_identities(key.read_text())
    plain = bytearray(
        zstandard.ZstdDecompressor().stream_reader(AgeReader(io.BytesIO(blob), ids)).read()
    )
    with tarfile.open(fileobj=io.BytesIO(bytes(plain))) as t:
        name = next(n for n in t.getnames() if n.endswith("/agent.toml"))
        target, listed = t.getmember(name), t.getmember(".vigil/manifest.json")
    at = target.offset_data
    plain[at] ^= 0x01
    if manifest_too:
        body = bytes(plain[listed.offset_data : listed.offset_data + listed.size])
        m = decode_manifest(body)
        for e in m.entries:
            if e.path == name:
                e.sha256 = hashlib.sha256(plain[at : at + target.size]).hexdigest()
        m.content_digest = content_digest(m.entries, [recipient])
        new = encode_manifest(m)
        assert len(new) == len(body)
        plain[listed.offset_data : listed.offset_data + listed.size] = new
    out = io.BytesIO()
    w = AgeWriter(out, [recipient])
    w.write(zstandard.ZstdCompressor().compress(bytes(plain)))
    w.close()
    return out.getvalue(), name


@pytest.mark.parametrize(
    ("manifest_too", "why"),
    [
        (False, "'{name}': content does not match the manifest's SHA-256"),
        (True, "the manifest does not match the signed content digest"),
    ],
    ids=["file", "file and manifest"],
)
def test_restore_binds_every_byte_without_hashing_the_object(
    manifest_too: bool, why: str, site: BackupSite, tree: Path, tmp_path: Path, keyfile, capsys
) -> None:
    """A restore takes no SHA-256 of the stored object (``verify`` does). An object
    re-encrypted with one byte of a file changed, by someone holding the recovery key, is
    still refused by the restore and nothing is left: the file's hash, or the content
    digest the agent signed, no longer matches."""
    key, recipient = keyfile
    backed_up(site, tree, tmp_path, recipient)
    fid = site.backups()[0]["id"]
    obj_file = site.object_file(fid)
    changed, name = _reencrypted(obj_file.read_bytes(), key, recipient, manifest_too)
    obj_file.write_bytes(changed)
    why = why.format(name=name)
    dest = tmp_path / "dest"
    rc, _, err = restore(site, capsys, key, dest)
    assert rc == 1 and why in err, err
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if "vigil-restore" in p.name]
    rc, _, err = cli(site, capsys, "verify", "--server", site.server_id, "--identity", str(key))
    assert rc == 1 and why in err, err


def test_restore_refuses_malicious_archive_even_if_signed(
    site: BackupSite, tmp_path: Path, keyfile, capsys
) -> None:
    key, recipient = keyfile
    sk = site.key
    blob = craft(
        lambda t: [
            member(t, "etc", tarfile.DIRTYPE),
            member(t, "etc/ok.conf"),
            member(t, "etc/link", tarfile.SYMTYPE, link="../../../../etc/passwd"),
        ],
        recipient=recipient,
    )
    header = backup_envelope.BackupHeader(
        server_id=site.server_id,
        seq=1,
        created_at=1.0,
        ciphertext_sha256=hashlib.sha256(blob).hexdigest(),
        ciphertext_size=len(blob),
        content_digest=_digest_of(blob, key, recipient),
        recipients=[recipient],
        plaintext_size=1 << 20,
    )
    env = backup_envelope.encode(backup_envelope.sign(header, sk))
    site.set_recipients([recipient])
    assert site.run(upload(site, env, blob)) == 201  # the agent's key signed it: stored
    dest = tmp_path / "out" / "dest"
    rc, _, err = restore(site, capsys, key, dest)
    assert rc == 1 and "pointing outside" in err
    assert not dest.exists() and list((tmp_path / "out").iterdir()) == []
    # asked to, the restore leaves such links out and says so
    rc, out, err = restore(site, capsys, key, dest, "--skip-unsafe-links", "--json")
    assert rc == 0, err
    assert json.loads(out)["skipped_links"] == ["etc/link"] and "etc/link" in err
    assert (dest / "etc" / "ok.conf").read_bytes() == b"x"
    assert not (dest / "etc" / "link").is_symlink()


async def upload(site: BackupSite, envelope: bytes, blob: bytes) -> int:
    """Upload ``blob`` under ``envelope`` as the site's server; the status of 'complete'."""
    client = site.client()
    r = await client.request("POST", "/api/v1/agent/backups", envelope)
    assert r.status == 201, r.body
    opened = r.json()
    offset = 0
    while offset < len(blob):
        r = await client.request(
            "PUT",
            f"/api/v1/agent/backups/uploads/{opened['upload_id']}",
            blob[offset : offset + opened["chunk_size"]],
            "application/octet-stream",
            params={"offset": offset},
        )
        assert r.status == 200, r.body
        offset = r.json()["offset"]
    r = await client.request(
        "POST", f"/api/v1/agent/backups/uploads/{opened['upload_id']}/complete"
    )
    return r.status


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


def test_console_entry_point(site: BackupSite, tree: Path, tmp_path: Path, keyfile) -> None:
    import subprocess
    import sys

    key, recipient = keyfile
    backed_up(site, tree, tmp_path, recipient)
    env = dict(os.environ, VIGIL_COLLECTOR=site.collector.url, VIGIL_API_KEY=site.partner.api_key)
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "recovery.cli",
            "verify",
            "--server",
            site.server_id,
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
