"""Archives across versions of the writer: one written by the first archive writer
(``old_archive/``: fractional PAX mtimes, the manifest built in memory) still restores
exactly with the reader ``vigil-backup`` uses (``vigil-backup`` itself also checks the
manifest names the server it restores, which that fixture's cannot); and what today's
writer makes with each ``[backup] threads`` value, streamed to the real collector as it
is encrypted, restores with ``vigil-backup``."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from pathlib import Path

import pytest

from protocol.backup_archive import read_identities
from recovery.extract import read_archive
from tests.backups.archive_helpers import snapshot
from tests.backups.backup_site import BackupSite
from tests.backups.recovery_cli import restore

OLD = Path(__file__).resolve().parent / "old_archive"


def _expected() -> dict:
    return json.loads((OLD / "expected.json").read_text())


def _restored(root: Path) -> dict[str, list]:
    """The tree under ``root`` in ``expected.json``'s form."""
    out: dict[str, list] = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        rel = str(p.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ["symlink", 0o777, st.st_mtime_ns, os.readlink(p)]
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ["dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, None]
        else:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[rel] = ["file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, digest]
    return out


def test_an_archive_of_the_first_writer_restores_exactly(tmp_path: Path) -> None:
    want = _expected()
    blob = (OLD / "archive.age").read_bytes()
    dest = tmp_path / "restored"
    dest.mkdir()
    read = read_archive(
        io.BytesIO(blob),
        read_identities((OLD / "key.txt").read_text()),
        recipients=[want["recipient"]],
        dest=dest,
    )
    assert read.ciphertext_sha256 == want["ciphertext_sha256"]
    assert read.manifest.content_digest == want["content_digest"]
    assert read.manifest.server_id == "old-server"
    got = _restored(dest / Path(want["tree"]).relative_to("/"))
    assert got == want["entries"]
    # what the fixture holds: PAX names, a symlink, nanosecond mtimes, an owner-only file
    assert any(len(name) > 100 for name in got)
    assert any(kind == "symlink" for kind, *_ in got.values())
    assert got["etc/vms/secret.key"][1] == 0o600


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_new_archives_restore_with_vigil_backup(
    site: BackupSite, tree: Path, tmp_path: Path, keyfile, capsys, threads: int
) -> None:
    """Each thread count, the upload streamed as the archive is encrypted (chunks from
    memory, signed with the body bound by the envelope), restores to the same tree."""
    key, recipient = keyfile
    runner, client = site.runner(
        tmp_path / "state",
        {"paths": [str(tree)], "threads": threads},
        [recipient],
        streaming=True,
    )
    assert runner.settings.threads == threads
    out = site.run(runner.run_once())
    assert out.outcome == "ok", out.reason
    assert client.puts(), "no chunk was sent"
    dest = tmp_path / "dest"
    rc, _, err = restore(site, capsys, key, dest)
    assert rc == 0, err
    rel = tree.relative_to("/")
    assert snapshot(dest / rel) == snapshot(tree)
